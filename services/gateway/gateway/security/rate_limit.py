"""Per-principal token buckets, in memory (one gateway replica's share; the limit is per replica)."""

import time


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # id -> [tokens, last refill (monotonic)]

    def take(self, key: str, rate: float | None = None) -> float:
        """Takes one token; returns 0.0 if allowed, else the seconds until a token is available."""
        rate = rate or self.rate
        burst = max(self.burst, rate) if rate != self.rate else self.burst
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()  # bounded memory; forgetting buckets only ever lets requests through
            bucket = self._buckets[key] = [float(burst), now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate
