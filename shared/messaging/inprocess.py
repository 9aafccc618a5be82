"""In-process transport for the embedded single-process mode and fast unit tests.

It keeps the Kafka semantics the services rely on: keyed partitions, per-partition order, committed
offsets per consumer group, and redelivery of whatever was fetched but not committed when a consumer
restarts. Nothing survives the process: the outbox, not this, is what makes the embedded mode durable
(unsent outbox rows are relayed again at start-up, and the inboxes absorb the repeats).
"""

import asyncio
import re
from collections import defaultdict
from collections.abc import Sequence

from shared.messaging.transport import CommitFailed, IncomingMessage, OutgoingMessage, merged_offsets, partition_for, subscribed


class InProcessTransport:
    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self._logs: dict[str, list[list[IncomingMessage]]] = {}
        self._committed: dict[str, dict[tuple[str, int], int]] = defaultdict(dict)
        self._appended = asyncio.Condition()
        self._round_robin = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def check(self) -> None:
        pass

    def _log(self, topic: str) -> list[list[IncomingMessage]]:
        return self._logs.setdefault(topic, [[] for _ in range(self.partitions)])

    async def send_batch(self, messages: list[OutgoingMessage], timeout_s: float = 30.0) -> None:
        for m in messages:
            self._round_robin += 1
            p = partition_for(m.key, self.partitions, self._round_robin)
            log = self._log(m.topic)[p]
            log.append(IncomingMessage(m.topic, p, len(log), m.key, m.value, list(m.headers)))
        async with self._appended:
            self._appended.notify_all()

    def consumer(self, group_id: str, topics: list[str], pattern: str | None = None) -> "InProcessConsumer":
        if pattern is not None:  # the topics that exist when it starts (partners are not on this transport)
            topics = [t for t in self._logs if re.match(pattern, t)]
        return InProcessConsumer(self, group_id, topics)

    async def adopt_offsets(
        self, group_id: str, lineages: Sequence[Sequence[str]], topics: list[str], pattern: str | None = None
    ) -> dict[tuple[str, int], int]:
        if self._group_offsets(group_id, topics, pattern):
            return {}
        offsets = merged_offsets([[self._group_offsets(group, topics, pattern) for group in lineage] for lineage in lineages])
        self._committed[group_id].update(offsets)
        return offsets

    async def end_offsets(self, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        return {
            (t, p): len(log) for t, logs in self._logs.items() if subscribed(t, topics, pattern) for p, log in enumerate(logs)
        }

    async def committed_offsets(self, group_id: str, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        return self._group_offsets(group_id, topics, pattern)

    def _group_offsets(self, group_id: str, topics: list[str], pattern: str | None) -> dict[tuple[str, int], int]:
        return {tp: o for tp, o in self._committed.get(group_id, {}).items() if subscribed(tp[0], topics, pattern)}

    def messages(self, topic: str) -> list[IncomingMessage]:
        """Everything ever sent to `topic`, for tests and the dead-letter listing."""
        return [m for part in self._log(topic) for m in part]


class InProcessConsumer:
    """The only member of its group: it owns every partition of its topics."""

    def __init__(self, transport: InProcessTransport, group_id: str, topics: list[str]) -> None:
        self._t = transport
        self._group = group_id
        self._topics = topics
        self._position: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        committed = self._t._committed[self._group]
        self._position = {(t, p): committed.get((t, p), 0) for t in self._topics for p in range(self._t.partitions)}

    async def stop(self) -> None:
        self._position = {}

    def _take(self, max_records: int) -> list[IncomingMessage]:
        out: list[IncomingMessage] = []
        for (topic, p), pos in self._position.items():
            log = self._t._log(topic)[p]
            chunk = log[pos : pos + max_records - len(out)]
            if chunk:
                out.extend(chunk)
                self._position[(topic, p)] = pos + len(chunk)
            if len(out) >= max_records:
                break
        return out

    async def getmany(self, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        batch = self._take(max_records)
        if batch:
            return batch
        try:
            async with self._t._appended:
                await asyncio.wait_for(self._t._appended.wait(), timeout_ms / 1000)
        except TimeoutError:
            return []
        return self._take(max_records)

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not self._position:
            raise CommitFailed("consumer is stopped")
        self._t._committed[self._group].update(offsets)
