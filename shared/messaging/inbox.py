"""Inbox consumer: applies a fetched batch in one transaction, exactly once per (consumer, event).

Per batch: parse and validate, drop events this consumer already applied (the inbox rows are written in the
same transaction as the effects), apply the rest, commit, and only then commit the offsets. A crash anywhere
before the database commit redelivers the batch; a crash after it redelivers events the inbox now skips. The
offsets of batches applied in a row go to the broker together, at most every `commit_interval_s` (`_Offsets`).

Failures: an event that can never be applied (bad JSON, wrong shape) goes straight to `<topic>.dlq`. If
applying a batch fails for another reason, the batch is retried event by event, each up to `max_attempts`,
and only the events that keep failing are dead-lettered, with the error in the message headers, so the
partition keeps flowing. Infrastructure failures (Postgres down, connection lost) are never a reason to
dead-letter: the batch is retried with back-off until the database is back.
"""

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import Envelope, InvalidEvent, Payload, describe_validation_error
from shared.contracts.topics import dlq
from shared.log import correlation_id
from shared.messaging.metrics import BATCH_SECONDS, EVENTS_APPLIED, EVENTS_DEAD_LETTERED, EVENTS_DUPLICATE
from shared.messaging.tables import MessagingTables
from shared.messaging.transport import (
    CommitFailed,
    Consumer,
    IncomingMessage,
    OutgoingMessage,
    Transport,
    TransportError,
    consumed_through,
)
from shared.validation import text_problem

log = logging.getLogger(__name__)

# How often a consumer commits its offsets at most. Each commit is a request to the group's coordinator (a write to
# `__consumer_offsets`) costing the consumer ~17 µs of CPU (`python -m bench messaging`: 1.06x less CPU per event
# in batches of 30 than a commit per batch). A crash redelivers at most this much more, which the inbox skips;
# `caught_up` (an erasure's wait for the Kafka door) sees an applied batch this much later at most.
COMMIT_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    envelope: Envelope
    payload: Payload
    message: IncomingMessage


Handler = Callable[[AsyncSession, list[ConsumedEvent]], Awaitable[None]]


def dead_letter_message(msg: IncomingMessage, reason: str, consumer_group: str, attempts: int) -> OutgoingMessage:
    """The original bytes and headers, to `<topic>.dlq`, with why and where from in `dlq_*` headers.

    Every dead letter of the project has this shape (the inbox's, and partner ingestion's, which goes out through its
    outbox), so one reader of the dead-letter topics understands them all. A message dead-lettered again (replayed
    from a DLQ) keeps only its newest `dlq_*` headers.
    """
    return OutgoingMessage(
        topic=dlq(msg.topic),
        value=msg.value or b"",
        key=msg.key,
        headers=[h for h in msg.headers if not h[0].startswith("dlq_")]
        + [
            ("dlq_error", reason.encode("utf-8", "replace")[:4000]),
            ("dlq_consumer", consumer_group.encode()),
            ("dlq_topic", msg.topic.encode()),
            ("dlq_partition", str(msg.partition).encode()),
            ("dlq_offset", str(msg.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
        ],
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one consumer listens to: topics (without prefix), the payload types it applies, and how."""

    name: str
    topics: list[str]
    event_types: dict[str, type[Payload]]
    handler: Handler
    # Ingestion fronts dead-letter event types they do not know; internal consumers skip them.
    reject_unknown_types: bool = False
    # Types not in `event_types` are parsed as this model instead, for a handler that checks them against a
    # catalogue it keeps in its database (interaction's custom event types); it dead-letters the unknown ones.
    unknown_types_as: type[Payload] | None = None
    # A regex over topic names (without prefix) to subscribe to instead of `topics`, for topics made at run
    # time (one per partner); matching topics created later are picked up at the next metadata refresh.
    topic_pattern: str | None = None
    # Raises `InvalidEvent` for a message that must not be applied whoever sent it (e.g. a source its topic's
    # writer may not use): it is dead-lettered before its (source, id) is claimed, so it cannot take the id of
    # the genuine event.
    admit: Callable[[IncomingMessage, Envelope], None] | None = None
    # Names this consumer had before (most recent first), kept after a rename: the new consumer group starts
    # from the offsets the former group committed (if it has none of its own), and an event the inbox holds
    # under a former name counts as applied. See docs/development.md, "Renaming a consumer".
    former_names: tuple[str, ...] = ()
    # The handler leaves every reader's answer right however often it applies an event (it keeps owner versions,
    # greatest wins, and marks that at worst cause a re-read): its events are not claimed in the inbox, which
    # saves PostgreSQL a row, its index entry and its WAL per event. It still gets each event once per batch.
    # Only for a handler whose tests apply events twice (docs/development.md, "Idempotent handlers").
    idempotent: bool = False


@dataclass(frozen=True, slots=True)
class InboxPart:
    """One subscription of a consumer: its events are claimed under `inbox_name` (or found applied under one of
    `former_inbox_names`) and applied by its handler."""

    inbox_name: str
    subscription: Subscription
    former_inbox_names: Sequence[str] = ()


class InboxConsumer:
    """One Kafka consumer group applying one subscription, or several together (`parts`).

    Parts share the fetch, the parsing and the transaction; each keeps its own inbox name, so each applies an
    event exactly once whichever consumer group delivered it. `adopt_from` lists, for a group that is new, the
    groups whose committed offsets it starts from: one lineage (newest name first) per part it took over; per
    partition it starts from the earliest of them (`merged_offsets`).
    """

    def __init__(
        self,
        *,
        group_id: str,
        inbox_name: str = "",
        subscription: Subscription | None = None,
        parts: Sequence[InboxPart] = (),
        topic_prefix: str,
        transport: Transport,
        session_factory: async_sessionmaker[AsyncSession],
        tables: MessagingTables,
        batch_size: int = 500,
        max_attempts: int = 3,
        poll_timeout_ms: int = 500,
        commit_interval_s: float = COMMIT_INTERVAL_S,
        adopt_from: Sequence[Sequence[str]] = (),
        former_inbox_names: Sequence[str] = (),
    ) -> None:
        if subscription is not None:
            parts = [InboxPart(inbox_name, subscription, former_inbox_names), *parts]
        if not parts:
            raise ValueError("an inbox consumer needs a subscription")
        self.group_id = group_id
        self.parts = list(parts)
        self.adopt_from = [list(lineage) for lineage in adopt_from if lineage]
        if len(self.parts) > 1:
            _check_combinable(self.parts)
        # The one subscription, or the first part's: what only a lone subscription may set (pattern, admit,
        # unknown types) is read from it.
        self.subscription = self.parts[0].subscription
        self.event_types = {t: m for part in self.parts for t, m in part.subscription.event_types.items()}
        self.topics = sorted({topic_prefix + t for part in self.parts for t in part.subscription.topics})
        self._part_topics = [{topic_prefix + t for t in part.subscription.topics} for part in self.parts]
        pattern = self.subscription.topic_pattern
        self.pattern = f"^{re.escape(topic_prefix)}(?:{pattern})$" if pattern else None
        self.transport = transport
        self.session_factory = session_factory
        self.inbox = tables.inbox
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.poll_timeout_ms = poll_timeout_ms
        self.commit_interval_s = commit_interval_s
        self._stopping = asyncio.Event()
        self.running = False

    async def caught_up(self, timeout_s: float, poll_s: float = 0.1) -> bool:
        """Whether this consumer's group applied every message its topics held when called, waiting up to
        `timeout_s` (any replica's consumer of the group counts: the committed offsets are the group's, committed
        after the batch's transaction). A barrier for a request that must come after everything the transport
        acknowledged before it; raises `TransportError` when the transport could not say by then (a failed read
        is tried again meanwhile: a broker answers "coordinator not available" until a group's coordinator is up)."""
        deadline = time.monotonic() + timeout_s
        ends: dict[tuple[str, int], int] | None = None
        while True:
            try:
                if ends is None:
                    ends = await self.transport.end_offsets(self.topics, self.pattern)
                if consumed_through(ends, await self.transport.committed_offsets(self.group_id, self.topics, self.pattern)):
                    return True
                failure = None
            except TransportError as exc:
                failure = exc
            if time.monotonic() >= deadline:
                if failure is not None:
                    raise failure
                return False
            await asyncio.sleep(poll_s)

    def stop(self) -> None:
        """Finish the batch in hand, commit it, then return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            consumer = self.transport.consumer(self.group_id, self.topics, self.pattern)
            offsets = _Offsets(functools.partial(self._commit, consumer), self.commit_interval_s)
            try:
                if self.adopt_from:
                    # Before the first fetch, else a renamed or merged group would start from the beginning of its
                    # topics.
                    await self.transport.adopt_offsets(self.group_id, self.adopt_from, self.topics, self.pattern)
                    self.adopt_from = []
                await consumer.start()
                self.running = True
                while not self._stopping.is_set():
                    batch = await consumer.getmany(self.poll_timeout_ms, self.batch_size)
                    if batch:
                        await self.process(batch)
                        offsets.applied(batch)
            except TransportError as exc:
                log.warning("consumer %s lost the transport, restarting: %r", self.group_id, exc)
                await self._pause(2.0)
            except _Stopped:
                log.info("consumer %s stopped with an unapplied batch; it will be redelivered", self.group_id)
            except Exception:
                log.exception("consumer %s failed; restarting from the last committed offsets", self.group_id)
                await self._pause(2.0)
            finally:
                self.running = False
                await offsets.flush()  # never raises: _commit logs its failures
                await consumer.stop()

    async def process(self, batch: list[IncomingMessage]) -> None:
        """Apply one fetched batch; returns once every message is applied, skipped or dead-lettered."""
        started = time.perf_counter()
        events, dead = self._parse(batch)
        if events:
            try:
                await self._with_infra_retries(lambda: self._apply(events))
            except _Stopped:
                raise
            except Exception as exc:  # noqa: BLE001 - isolate the event(s) that fail, below
                log.warning("batch of %d failed (%r); applying one by one", len(events), exc)
                dead.extend(await self._apply_one_by_one(events))
        if dead:
            await self._dead_letter(dead)
        BATCH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)

    def _parse(self, batch: list[IncomingMessage]) -> tuple[list[ConsumedEvent], list[tuple[IncomingMessage, str, int]]]:
        events: list[ConsumedEvent] = []
        dead: list[tuple[IncomingMessage, str, int]] = []
        for msg in batch:
            try:
                envelope = Envelope.from_kafka(msg.value, msg.headers)
                for name in ("id", "source"):
                    # The inbox's key: text Postgres cannot store would fail the claim of the whole batch.
                    if problem := text_problem(getattr(envelope, name)):
                        raise InvalidEvent(f"{name}: {problem}")
                if self.subscription.admit is not None:
                    self.subscription.admit(msg, envelope)
                model = self.event_types.get(envelope.type) or self.subscription.unknown_types_as
                if model is None:
                    if self.subscription.reject_unknown_types:
                        raise InvalidEvent(f"unknown event type {envelope.type!r}")
                    continue  # not for this consumer: consumers ignore what they do not use
                try:
                    payload = model.model_validate(envelope.data)
                except ValueError as exc:
                    raise InvalidEvent(f"data of {envelope.type}: {_reason(exc)}") from None
            except InvalidEvent as exc:
                dead.append((msg, str(exc), 0))
                continue
            events.append(ConsumedEvent(envelope, payload, msg))
        return events, dead

    async def _apply(self, events: list[ConsumedEvent], parts: Sequence[int] | None = None) -> None:
        """Claim and apply `events` in one transaction, for every part or for the `parts` given (indexes)."""
        token = correlation_id.set(events[0].envelope.correlationid)
        try:
            applied = duplicate = 0
            chosen = range(len(self.parts)) if parts is None else parts
            mine = {i: events if len(self.parts) == 1 else [e for e in events if self._for(i, e)] for i in chosen}
            async with self.session_factory() as session, session.begin():
                fresh = await self._claim(session, mine)
                for i in chosen:
                    if fresh[i]:
                        await self.parts[i].subscription.handler(session, fresh[i])
                    applied, duplicate = applied + len(fresh[i]), duplicate + len(mine[i]) - len(fresh[i])
            EVENTS_APPLIED.labels(self.group_id).inc(applied)
            EVENTS_DUPLICATE.labels(self.group_id).inc(duplicate)
        finally:
            correlation_id.reset(token)

    def _for(self, part: int, event: ConsumedEvent) -> bool:
        return event.message.topic in self._part_topics[part] and event.envelope.type in self.parts[part].subscription.event_types

    async def _claim(self, session: AsyncSession, events: dict[int, list[ConsumedEvent]]) -> dict[int, list[ConsumedEvent]]:
        """Each part's events not applied before (each event once), all parts in one statement; an idempotent
        part's are not claimed: all of them, each once."""
        unique: dict[int, dict[tuple[str, str], ConsumedEvent]] = {i: {} for i in events}
        for i, part_events in events.items():
            for e in part_events:  # in order, the first of a repeated event kept
                unique[i].setdefault((e.envelope.source, e.envelope.id), e)
        claimed = [i for i in unique if not self.parts[i].subscription.idempotent]
        claims = [(self.parts[i].inbox_name, list(unique[i]), self.parts[i].former_inbox_names) for i in claimed]
        new = await claim_many(session, self.inbox, claims) if any(keys for _, keys, _ in claims) else [set()] * len(claims)
        fresh = {i: [e for key, e in unique[i].items() if key in keys] for i, keys in zip(claimed, new, strict=True)}
        return {i: fresh[i] if i in fresh else list(u.values()) for i, u in unique.items()}

    async def _apply_one_by_one(self, events: list[ConsumedEvent]) -> list[tuple[IncomingMessage, str, int]]:
        """Each event in a transaction of its own, and each part apart: a part that cannot apply an event does
        not keep it from the others (the dead letter, replayed, is skipped by the parts that applied it)."""
        dead = []
        for event in events:
            failures = [f for i in range(len(self.parts)) if (f := await self._apply_part(event, i)) is not None]
            if failures:
                reason = failures[0][0] if len(failures) == 1 else "; ".join(f"{p}: {r}" for r, _, p in failures)
                dead.append((event.message, reason[:4000], max(attempts for _, attempts, _ in failures)))
        return dead

    async def _apply_part(self, event: ConsumedEvent, part: int) -> tuple[str, int, str] | None:
        """None once applied (or skipped); else why it failed, after how many attempts, and the part's name."""
        name = self.parts[part].inbox_name
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._with_infra_retries(functools.partial(self._apply, [event], [part]))
                return None
            except _Stopped:
                raise
            except InvalidEvent as exc:
                return str(exc), attempt, name
            except Exception as exc:  # noqa: BLE001 - a poison event, after bounded retries
                if attempt >= self.max_attempts:
                    log.error("event %s failed %d times in %s, dead-lettering: %r", event.envelope.id, attempt, name, exc)
                    return f"{type(exc).__name__}: {exc}"[:1000], attempt, name
                await self._pause(0.05 * 2**attempt)

    async def _with_infra_retries(self, work: Callable[[], Awaitable[None]]) -> None:
        delay = 0.2
        while True:
            try:
                return await work()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("consumer %s: database unavailable, retrying in %.1fs: %r", self.group_id, delay, exc)
                if self._stopping.is_set():
                    raise _Stopped() from exc
                await self._pause(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter(self, dead: list[tuple[IncomingMessage, str, int]]) -> None:
        messages = [dead_letter_message(msg, reason, self.group_id, attempts) for msg, reason, attempts in dead]
        while True:
            try:
                await self.transport.send_batch(messages)
                break
            except TransportError as exc:
                # The offsets must not move past an event that is neither applied nor dead-lettered.
                log.warning("dead-letter publish failed, retrying: %r", exc)
                if self._stopping.is_set():
                    raise _Stopped() from exc
                await self._pause(1.0)
        EVENTS_DEAD_LETTERED.labels(self.group_id).inc(len(dead))
        for msg, reason, _ in dead:
            log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)

    async def _commit(self, consumer: Consumer, offsets: dict[tuple[str, int], int]) -> None:
        try:
            await consumer.commit(offsets)
        except CommitFailed as exc:
            log.info("offset commit skipped (%r); the inbox will absorb the redelivery", exc)
        except TransportError as exc:
            log.warning("offset commit failed (%r); the inbox will absorb the redelivery", exc)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass


class _Offsets:
    """The offsets of applied batches, committed together: at most one commit every `interval_s`, one at a time,
    in order, off the consumer's path (the next fetch and apply do not wait for it)."""

    def __init__(self, commit: Callable[[dict[tuple[str, int], int]], Awaitable[None]], interval_s: float) -> None:
        self._commit = commit  # never raises
        self._interval_s = interval_s
        self._waiting: dict[tuple[str, int], int] = {}  # (topic, partition) -> the next offset to read
        self._last = float("-inf")
        self._task: asyncio.Task | None = None
        self._now = asyncio.Event()  # set by `flush`: what waits goes without waiting out the interval

    def applied(self, batch: list[IncomingMessage]) -> None:
        for msg in batch:
            key = (msg.topic, msg.partition)
            self._waiting[key] = max(self._waiting.get(key, 0), msg.offset + 1)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._waiting:
            delay = self._last + self._interval_s - time.monotonic()
            if delay > 0 and not self._now.is_set():
                try:
                    await asyncio.wait_for(self._now.wait(), delay)
                except TimeoutError:
                    pass
            offsets, self._waiting = self._waiting, {}
            self._last = time.monotonic()
            await self._commit(offsets)

    async def flush(self) -> None:
        """Commit what is waiting now, and return once it is (the consumer is stopping or restarting)."""
        self._now.set()
        if self._task is not None:
            await self._task
        await self._send()


async def claim(
    session: AsyncSession, inbox: sa.Table, consumer: str, keys: list[tuple[str, str]], former: Sequence[str] = ()
) -> set[tuple[str, str]]:
    """Record `(source, event id)` keys as applied by `consumer`; returns those not recorded before, under its
    name or one of its `former` names.

    Call it in the transaction that applies the events: if that transaction rolls back, so does the claim.
    """
    return (await claim_many(session, inbox, [(consumer, keys, former)]))[0] if keys else set()


async def claim_many(
    session: AsyncSession, inbox: sa.Table, claims: Sequence[tuple[str, list[tuple[str, str]], Sequence[str]]]
) -> list[set[tuple[str, str]]]:
    """`claim` for several consumers (the parts of one) in one statement: (consumer, keys, former names) each;
    returns the new keys of each, in the same order."""
    params: dict[str, object] = {}
    for n, (consumer, keys, former) in enumerate(claims):
        params |= {f"consumer{n}": consumer, f"sources{n}": [k[0] for k in keys], f"ids{n}": [k[1] for k in keys]}
        if former:
            params[f"former{n}"] = list(former)
    inserted = await session.execute(_claim_statement(inbox.schema, tuple(bool(f) for _, _, f in claims)), params)
    new: list[set[tuple[str, str]]] = [set() for _ in claims]
    for part, sources, ids in inserted:
        new[part] = set(zip(sources, ids, strict=True))
    return new


@functools.cache
def _claim_statement(schema: str | None, has_former: tuple[bool, ...]) -> sa.TextClause:
    """One INSERT per consumer, as data-modifying CTEs of one statement (different consumers never conflict)."""

    def insert(n: int) -> str:
        # Rows under a former name: those the renaming migration did not move because a replica of the previous
        # release wrote them after it ran (one primary-key probe per key, only for a renamed consumer).
        not_former = (
            f"WHERE NOT EXISTS (SELECT 1 FROM {schema}.inbox f WHERE f.consumer = ANY(CAST(:former{n} AS text[])) "
            "AND f.source = u.s AND f.event_id = u.e) "
            if has_former[n]
            else ""
        )
        # Keys go in in one order (byte order): two transactions claiming the same keys then wait for one another
        # instead of each holding some the other needs (tests/integration/test_inbox_claim_order.py).
        return (
            f"c{n} AS (INSERT INTO {schema}.inbox (consumer, source, event_id) "
            f"SELECT CAST(:consumer{n} AS text), s, e FROM unnest(CAST(:sources{n} AS text[]), CAST(:ids{n} AS text[])) "
            f'AS u(s, e) {not_former}ORDER BY s COLLATE "C", e COLLATE "C" ON CONFLICT DO NOTHING '
            f"RETURNING {n} AS part, source, event_id)"
        )

    parts = range(len(has_former))
    # The new keys come back as two arrays per consumer: building a set from thousands of result rows cost more
    # than the insert itself.
    return sa.text(
        "WITH "
        + ", ".join(insert(n) for n in parts)
        + " SELECT part, array_agg(source), array_agg(event_id) FROM ("
        + " UNION ALL ".join(f"SELECT * FROM c{n}" for n in parts)
        + ") AS new GROUP BY part"
    )


def _check_combinable(parts: Sequence[InboxPart]) -> None:
    """Parts share one parse: an event type means one model for all, and what decides how a message is parsed
    or admitted (a topic pattern, unknown types, an admission check) belongs to a consumer of its own."""
    models: dict[str, type[Payload]] = {}
    for part in parts:
        sub = part.subscription
        if sub.topic_pattern or sub.admit or sub.reject_unknown_types or sub.unknown_types_as:
            raise ValueError(f"subscription {sub.name!r} parses or admits messages its own way: it needs its own consumer")
        for event_type, model in sub.event_types.items():
            if models.setdefault(event_type, model) is not model:
                raise ValueError(f"event type {event_type!r} has two models among the parts of one consumer")
    if len({p.inbox_name for p in parts}) < len(parts):
        raise ValueError("two parts of one consumer share an inbox name")


class _Stopped(Exception):
    """Shutdown was asked while the database was unreachable: leave the batch uncommitted."""


def _reason(exc: Exception) -> str:
    from pydantic import ValidationError

    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)


_TRANSIENT_PG = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
)


def is_transient(exc: BaseException) -> bool:
    """True for failures of the infrastructure, which a retry can cure; False for failures of the data."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (OSError, ConnectionError, TimeoutError, *_TRANSIENT_PG)):
            return True
        if isinstance(cur, sa.exc.DBAPIError) and cur.connection_invalidated:
            return True
        if isinstance(cur, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
