"""The interface both transports implement: Kafka (production, tests) and in-process (embedded mode).

Semantics both keep: messages with the same key go to the same partition and stay in order; a consumer
group resumes from its last committed offset, so anything fetched but not committed is delivered again.
"""

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        """Up to `max_records` messages, each partition's in offset order; [] after `timeout_ms` with none."""
        ...

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit `{(topic, partition): next offset}`; raises `CommitFailed` if the partition moved away."""
        ...


class Transport(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_batch(self, messages: list[OutgoingMessage], timeout_s: float = 30.0) -> None:
        """Returns once every message is durably acknowledged; raises `TransportError` otherwise."""
        ...

    def consumer(self, group_id: str, topics: list[str], pattern: str | None = None) -> Consumer:
        """A consumer in `group_id` of `topics`, or of every topic matching the regex `pattern` if given."""
        ...

    async def adopt_offsets(
        self, group_id: str, lineages: Sequence[Sequence[str]], topics: list[str], pattern: str | None = None
    ) -> dict[tuple[str, int], int]:
        """Give a renamed or merged consumer group its place: if `group_id` has no committed offset on `topics`
        (or the topics matching `pattern`), commit there `merged_offsets` of the groups in `lineages` (one per
        consumer it takes over, each its names newest first). Returns what was copied ({} when the group already
        had offsets or nothing was found)."""
        ...

    async def end_offsets(self, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        """`{(topic, partition): the offset the next message will get}` of `topics` (or those matching `pattern`)."""
        ...

    async def committed_offsets(self, group_id: str, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        """The offsets `group_id` committed on `topics` (or those matching `pattern`); a partition it never
        committed on is left out."""
        ...

    async def check(self) -> None:
        """Raises `TransportError` if the transport cannot currently serve; used by readiness."""
        ...


class TransportError(Exception):
    """The transport could not do what was asked now; the same call may succeed later."""


class CommitFailed(TransportError):
    """Offsets could not be committed (e.g. a rebalance moved the partition); the inbox absorbs the redelivery."""


def merged_offsets(lineages: Sequence[Sequence[dict[tuple[str, int], int]]]) -> dict[tuple[str, int], int]:
    """Where a consumer that takes over others starts: each lineage (one former consumer's groups, newest name
    first) stands at the committed offsets of its first group that has some; per partition, the earliest of them.

    A partition some lineage has no offset for is left out, so the new group starts it where that consumer would
    have (the beginning): nothing another consumer has not applied is skipped. Each former consumer's inbox
    absorbs the events it sees again.
    """
    standing = [next((offsets for offsets in lineage if offsets), {}) for lineage in lineages]
    if not standing:
        return {}
    shared = set(standing[0]).intersection(*standing[1:])
    return {tp: min(offsets[tp] for offsets in standing) for tp in sorted(shared)}


def subscribed(topic: str, topics: list[str], pattern: str | None) -> bool:
    """Whether a consumer of `topics` (or of the regex `pattern`, if given) reads `topic`."""
    return re.match(pattern, topic) is not None if pattern else topic in topics


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Same key, same partition: that is what keeps one customer's events in order."""
    if key is None:
        return fallback % partitions
    return zlib.crc32(key) % partitions


def consumed_through(ends: dict[tuple[str, int], int], committed: dict[tuple[str, int], int]) -> bool:
    """Whether the committed offsets reach the end offsets on every partition (an empty one needs none)."""
    return all(committed.get(tp, 0) >= end for tp, end in ends.items())
