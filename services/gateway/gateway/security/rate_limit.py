"""Token buckets, in memory (one gateway replica's share; the limit is per replica).

Used twice: per credential (the request rate a key may use) and per client address for failed
authentications (security issue, class 7: a flood of random keys may not cost a database lookup each).
"""

import time


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # id -> [tokens, last refill (monotonic)], oldest first

    def take(self, key: str, rate: float | None = None) -> float:
        """Takes one token; returns 0.0 if allowed, else the seconds until a token is available."""
        rate = rate or self.rate
        burst = max(self.burst, rate) if rate != self.rate else self.burst
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                # Bounded memory: the oldest bucket goes (forgetting one only ever lets requests through).
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = [float(burst), now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / rate

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token (0.0: it has one now); takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket[0] + (time.monotonic() - bucket[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
