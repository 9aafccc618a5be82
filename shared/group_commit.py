"""Group commit: concurrent requests that each need a short write transaction share one.

A request hands its prepared work to `GroupCommit.submit` and waits. Work that arrives while a transaction is
being committed (or within `max_wait_s` of the first waiting item) is applied together, in one transaction
and one commit; each request is answered with its own result only after that commit, so an answer still
means "durable". When nothing else is waiting a request pays at most `max_wait_s` more.

Errors keep the meaning they had with one transaction per request:
  - a failure of the infrastructure (`is_transient`: the database is down, a deadlock, a serialization
    failure) fails every request of the group with it: nothing was stored, each may resend;
  - any other failure (a poison item, a bug) must not cost the other requests their write: the group is
    retried one request per transaction, so each gets exactly the outcome it would have had on its own.

`Grouped` is the same grouping around any call that takes several works at once (the gateway sends
concurrent single-event posts of one caller to the interaction service as one request); `GroupCommit` is it
around a database transaction.

There is no background task to start or stop: a flush task exists only while work is waiting, and requests
in flight hold the server open at shutdown until they are answered.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.messaging.inbox import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# apply(session, works) → one result per work, in order; runs inside the group's transaction.
Apply = Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R]]]
# run(works) → one result per work, in order.
Run = Callable[[list[T]], Awaitable[Sequence[R]]]


@dataclass(slots=True)
class _Waiting(Generic[T, R]):
    work: T
    size: int
    future: asyncio.Future


class Grouped(Generic[T, R]):
    """Runs concurrently submitted works together, at most `in_flight` groups at a time (module docstring)."""

    def __init__(
        self,
        run: Run,
        *,
        is_transient: Callable[[BaseException], bool],
        max_wait_s: float = 0.002,
        max_size: int = 1000,
        in_flight: int = 1,
        name: str = "grouped",
    ) -> None:
        self._run = run
        self._is_transient = is_transient
        # Groups running at once. A transaction takes one (groups commit one after another: while one commits,
        # the next forms); a call to a server that groups again itself may take more, so that server has the next
        # group in hand when it finishes one.
        self.in_flight = in_flight
        self._running: set[asyncio.Task] = set()
        self.max_wait_s = max_wait_s
        self.max_size = max_size  # in units of `size` (events): a group is closed once it holds this many
        self.name = name
        self._waiting: list[_Waiting[T, R]] = []
        self._flusher: asyncio.Task | None = None
        # What the groups were like, for the metrics and the tests: groups committed, works in them.
        self.groups = 0
        self.works = 0
        self.largest = 0
        self.split = 0  # groups retried one work per transaction after a non-transient failure

    @property
    def idle(self) -> bool:
        """Nothing waiting and no group in flight."""
        return not self._waiting and not self._running and (self._flusher is None or self._flusher.done())

    async def submit(self, work: T, size: int = 1) -> R:
        """Runs `work` with the others waiting; returns its result once their group has run."""
        waiting: _Waiting[T, R] = _Waiting(work, max(1, size), asyncio.get_running_loop().create_future())
        # Retrieved even when the request has gone away, so a failure it never reads is not logged as lost.
        waiting.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(waiting)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self.name)
        # Shielded: a client that goes away does not cancel the future the group will resolve; its work is
        # applied all the same (as it would have been had the commit already started).
        return await asyncio.shield(waiting.future)

    async def _flush(self) -> None:
        # One flush task at a time; it runs at most `in_flight` groups at once.
        group: list[_Waiting[T, R]] = []
        # Only a group started from idle waits `max_wait_s` for company: work that arrived while the previous
        # group ran has waited already, and goes at once.
        from_idle = not self._running
        try:
            while self._waiting:
                while len(self._running) >= self.in_flight:
                    await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
                if from_idle and self.max_wait_s > 0 and self._size(self._waiting) < self.max_size:
                    await asyncio.sleep(self.max_wait_s)
                from_idle = False
                group, size = [], 0
                while self._waiting and (not group or size + self._waiting[0].size <= self.max_size):
                    item = self._waiting.pop(0)
                    group.append(item)
                    size += item.size
                if self.in_flight == 1:
                    await self._commit(group)
                else:
                    task = asyncio.create_task(self._commit(group), name=self.name)
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                group = []
        except BaseException as exc:
            # Cancelled (the loop is closing): nobody may wait forever for an answer that will not come.
            for w in [*group, *self._waiting]:
                _resolve(w.future, exc=RuntimeError(f"{self.name} stopped before the commit ({exc!r})"))
            self._waiting.clear()
            raise

    @staticmethod
    def _size(waiting: list[_Waiting]) -> int:
        return sum(w.size for w in waiting)

    async def _commit(self, group: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._run([w.work for w in group])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets its own answer, below
            if len(group) == 1 or self._is_transient(exc):
                for w in group:
                    _resolve(w.future, exc=exc)
                return
            log.warning("%s: a group of %d failed (%r); retrying one per transaction", self.name, len(group), exc)
            self.split += 1
            for w in group:
                await self._commit([w])
            return
        self.groups += 1
        self.works += len(group)
        self.largest = max(self.largest, len(group))
        for w, result in zip(group, results, strict=True):
            _resolve(w.future, result=result)


class GroupCommit(Grouped[T, R]):
    """`Grouped` around one database transaction: `apply(session, works)` runs in it, the answers after it."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        apply: Apply,
        *,
        max_wait_s: float = 0.002,
        max_size: int = 1000,
        name: str = "group-commit",
    ) -> None:
        super().__init__(self._transaction, is_transient=is_transient, max_wait_s=max_wait_s, max_size=max_size, name=name)
        self._session_factory = session_factory
        self._apply = apply

    async def _transaction(self, works: list[T]) -> Sequence[R]:
        async with self._session_factory() as session:
            try:
                results = await self._apply(session, works)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        return results


def _resolve(future: asyncio.Future, *, result: object = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
