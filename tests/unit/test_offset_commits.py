"""A consumer's offsets go to the broker together: at most one commit per interval, in order, each holding the
newest offset of every partition applied since the last, and nothing left behind when the consumer stops
(shared/messaging/inbox.py, `_Offsets`). The broker itself is in the integration tests; here, the schedule."""

import asyncio
import time

from shared.messaging.inbox import _Offsets
from shared.messaging.transport import IncomingMessage


def _batch(partition: int, *offsets: int) -> list[IncomingMessage]:
    return [IncomingMessage("t", partition, o, None, b"{}", []) for o in offsets]


class Recorder:
    def __init__(self, seconds: float = 0.0) -> None:
        self.commits: list[tuple[float, dict[tuple[str, int], int]]] = []
        self.seconds = seconds  # how long a commit takes

    async def __call__(self, offsets: dict[tuple[str, int], int]) -> None:
        await asyncio.sleep(self.seconds)
        self.commits.append((time.monotonic(), offsets))


async def test_the_first_batch_is_committed_at_once_and_the_next_ones_together_after_the_interval():
    commits = Recorder()
    offsets = _Offsets(commits, interval_s=0.3)
    started = time.monotonic()
    offsets.applied(_batch(0, 0, 1))
    await asyncio.sleep(0.02)
    assert [c for _, c in commits.commits] == [{("t", 0): 2}]
    for n in range(2, 12, 2):  # five more batches within the interval, on two partitions
        offsets.applied(_batch(0, n, n + 1) + _batch(1, n))
        await asyncio.sleep(0.01)
    assert len(commits.commits) == 1
    await asyncio.sleep(0.4)
    assert [c for _, c in commits.commits] == [{("t", 0): 2}, {("t", 0): 12, ("t", 1): 11}]
    assert commits.commits[1][0] - started >= 0.3


async def test_stopping_commits_what_waits_without_waiting_out_the_interval():
    commits = Recorder()
    offsets = _Offsets(commits, interval_s=60)
    offsets.applied(_batch(0, 0))
    await asyncio.sleep(0.01)
    offsets.applied(_batch(0, 1, 2))
    offsets.applied(_batch(3, 7))
    started = time.monotonic()
    await offsets.flush()
    assert time.monotonic() - started < 1
    assert [c for _, c in commits.commits] == [{("t", 0): 1}, {("t", 0): 3, ("t", 3): 8}]


async def test_a_slow_commit_holds_the_next_one_back_and_no_batch_waits_for_it():
    commits = Recorder(seconds=0.2)
    offsets = _Offsets(commits, interval_s=0)
    offsets.applied(_batch(0, 0))
    await asyncio.sleep(0.01)
    for n in range(1, 6):  # applied while the first commit is in flight: they go as one, after it
        offsets.applied(_batch(0, n))
    await offsets.flush()
    assert [c for _, c in commits.commits] == [{("t", 0): 1}, {("t", 0): 6}]
    assert commits.commits[1][0] > commits.commits[0][0]


async def test_nothing_applied_nothing_committed():
    commits = Recorder()
    await _Offsets(commits, interval_s=0.1).flush()
    assert commits.commits == []
