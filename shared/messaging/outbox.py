"""Transactional outbox: publish by inserting rows in the same transaction as the change; a relay sends them.

The relay is the only writer to Kafka. One relay per service is active at a time (a Postgres advisory lock;
replicas stand by), so rows go out in id order and one customer's events stay in order. LISTEN/NOTIFY wakes
it as soon as a transaction commits; polling every `poll_interval_s` is the truth when a notification is
missed. A crash between Kafka's ack and marking the rows sent publishes them again: the inboxes absorb it.

Sent rows are deleted at once: they are on the broker, whose topic retention keeps them from then on. Only the
in-process transport (the embedded mode) keeps them, marked sent, for `retention`: its log dies with the
process, and a relay starting on it sends them again. Marking a row costs more than deleting it: the UPDATE
writes the whole row (payload included) again, with new entries in two indexes, and the hourly prune then
deletes it anyway (`python -m bench outbox_relay`).
"""

import asyncio
import logging
import zlib
from collections.abc import Callable, Sequence
from datetime import timedelta

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.contracts.envelope import Envelope, EnvelopeTemplate
from shared.db import autocommit
from shared.log import current_correlation_id
from shared.messaging.metrics import OUTBOX_PUBLISHED, OUTBOX_RELAY_ERRORS
from shared.messaging.tables import MessagingTables, notify_channel
from shared.messaging.transport import OutgoingMessage, Transport, TransportError

log = logging.getLogger(__name__)
CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=UTF-8")


class Outbox:
    """Where a service's code puts the events it publishes. Call inside the transaction of the change."""

    def __init__(self, tables: MessagingTables, schema: str, topic_prefix: str = "") -> None:
        self.table = tables.outbox
        self.templates = tables.outbox_template
        self.channel = notify_channel(schema)
        self.topic_prefix = topic_prefix
        # One fixed-shape statement per call, whatever the number of rows (an executemany costs ~60 µs a row).
        # WITH ORDINALITY + ORDER BY: ids are drawn in the order of `events`, so the relay, which sends in id
        # order, keeps one customer's events in order. The notification rides in the same round trip; it is
        # delivered at commit and coalesced per transaction: one wake-up however many rows.
        table = f"{self.table.schema}.{self.table.name}" if self.table.schema else self.table.name
        self._insert = sa.text(f"""
            WITH added AS (
                INSERT INTO {table} (event_id, topic, key, payload)
                SELECT e, t, k, p FROM unnest(CAST(:event_ids AS text[]), CAST(:topics AS text[]),
                                              CAST(:keys AS text[]), CAST(:payloads AS bytea[]))
                    WITH ORDINALITY AS u(e, t, k, p, n)
                ORDER BY n
            )
            SELECT pg_notify(:channel, '')
        """)

    async def add_template(self, session: AsyncSession, parts: Sequence[bytes], holes: Sequence[str]) -> int:
        """Store an event's bytes around its holes once, for rows that then carry only (event_id, topic, key,
        template_id): a run's million membership events are ~150 bytes a row instead of ~800, which cuts the
        run's WAL by ~600 MB. `holes[i]` is "event_id", "key" or "id": the row's column filling that hole."""
        if len(parts) != len(holes) + 1 or not set(holes) <= set(TEMPLATE_HOLES):
            raise ValueError(f"a template has one part more than holes, each hole one of {TEMPLATE_HOLES}")
        t = self.templates
        return (
            await session.execute(sa.insert(t).values(parts=list(parts), holes=list(holes)).returning(t.c.template_id))
        ).scalar_one()

    async def add(self, session: AsyncSession, topic: str, events: Sequence[Envelope]) -> None:
        if not events:
            return
        correlation_id = current_correlation_id()
        for event in events:
            if event.correlationid is None and correlation_id is not None:
                event.correlationid = correlation_id
        await session.execute(
            self._insert,
            {
                "event_ids": [e.id for e in events],
                "topics": [self.topic_prefix + topic] * len(events),
                "keys": [e.subject for e in events],
                "payloads": [e.to_json() for e in events],
                "channel": self.channel,
            },
        )


class OutboxRelay:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        dsn: str,
        tables: MessagingTables,
        schema: str,
        transport: Transport,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        retention: timedelta = timedelta(hours=1),
        retain_sent: bool = False,
    ) -> None:
        self.engine = engine
        # Its reads and the one-statement mark as sent need no transaction: one round trip each (shared/db.py).
        self._statements = autocommit(engine)
        self.dsn = dsn
        self.table = tables.outbox
        self.templates = Templates(tables.outbox_template)
        self.channel = notify_channel(schema)
        self.lock_key = zlib.crc32(f"outbox-relay:{schema}".encode())
        self.transport = transport
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        # In-process transport: the log dies with the process, so sent rows are kept for `retention` and sent
        # again when a relay starts; the inboxes drop what they already applied. Otherwise sent rows are deleted.
        self.retain_sent = retain_sent
        self.schema = schema
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.active = False

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._run_while_leader()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, sa.exc.DBAPIError, TransportError) as exc:
                OUTBOX_RELAY_ERRORS.labels(self.schema).inc()
                log.warning("outbox relay interrupted, retrying: %r", exc)
            except Exception:
                # Anything else (a driver's internal error while PostgreSQL restarts, ...) must not end the relay
                # for good either, as the consumers' loop never ends on one: the replica stayed unready forever
                # after a PostgreSQL kill in the proving ground. Unsent rows stay in the outbox; it retries.
                OUTBOX_RELAY_ERRORS.labels(self.schema).inc()
                log.exception("outbox relay failed, retrying")
            self.active = False
            await self._sleep(self.poll_interval_s)

    async def _run_while_leader(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            if not await conn.fetchval("select pg_try_advisory_lock($1)", self.lock_key):
                return  # another replica relays; try again after a pause
            await conn.add_listener(self.channel, lambda *_: self._wake.set())
            self.active = True
            if self.retain_sent:
                await self._resend_retained()
            last_cleanup = 0.0
            loop = asyncio.get_running_loop()
            while not self._stopping.is_set() and not conn.is_closed():
                sent = await self.relay_once()
                if loop.time() - last_cleanup > 60:
                    # Also without `retain_sent`: templates, and rows an earlier release marked sent.
                    await self._delete_old_sent()
                    last_cleanup = loop.time()
                if sent < self.batch_size:
                    await self._sleep(self.poll_interval_s)
        finally:
            await conn.close(timeout=5)

    async def _sleep(self, seconds: float) -> None:
        if self._stopping.is_set():
            return
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def relay_once(self) -> int:
        """Send one batch of unsent rows and mark them sent; returns how many."""
        t = self.table
        async with self._statements.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(*message_columns(t)).where(t.c.sent_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
                )
            ).all()
            messages = await self._messages(conn, rows)
        if not rows:
            return 0
        await self.transport.send_batch(messages)
        await self._mark_sent([r.id for r in rows])
        OUTBOX_PUBLISHED.labels(self.schema).inc(len(rows))
        return len(rows)

    async def _mark_sent(self, ids: list[int]) -> None:
        """The rows are on the transport: deleted, or marked sent where they are retained (`retain_sent`)."""
        t = self.table
        # `= ANY(array)`: one fixed-shape statement (an IN list renders a new statement per batch length).
        sent = t.c.id == sa.any_(sa.bindparam("ids", ids, type_=ARRAY(sa.BigInteger)))
        async with self._statements.connect() as conn:
            if self.retain_sent:
                await conn.execute(sa.update(t).where(sent).values(sent_at=sa.func.now()))
            else:
                await conn.execute(sa.delete(t).where(sent))

    async def _resend_retained(self) -> None:
        t = self.table
        last_id = 0
        while True:
            async with self._statements.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(*message_columns(t))
                        .where(t.c.sent_at.is_not(None), t.c.id > last_id)
                        .order_by(t.c.id)
                        .limit(self.batch_size)
                    )
                ).all()
                messages = await self._messages(conn, rows)
            if not rows:
                return
            await self.transport.send_batch(messages)
            last_id = rows[-1].id

    async def _messages(self, conn: AsyncConnection, rows: Sequence[sa.Row]) -> list[OutgoingMessage]:
        payloads = await self.templates.payloads(conn, rows)
        return [_message(r, payload) for r, payload in zip(rows, payloads, strict=True)]

    async def _delete_old_sent(self) -> None:
        t, templates = self.table, self.templates.table
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t).where(t.c.sent_at < sa.func.now() - self.retention))
            # A template goes with its last row. Only templates older than the retention are candidates (their
            # rows were written with them, in one transaction), so this reads the outbox only while one is due.
            await conn.execute(
                sa.delete(templates).where(
                    templates.c.created_at < sa.func.now() - self.retention,
                    ~sa.exists().where(t.c.template_id == templates.c.template_id),
                )
            )

    async def unsent_count(self) -> int:
        async with self._statements.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).where(self.table.c.sent_at.is_(None)))).scalar_one()


async def forget_subjects(
    session: AsyncSession, tables: MessagingTables, keys: Sequence[str], redact: Callable[[str, dict], dict]
) -> None:
    """Erasure (R8): no outbox row keyed by these subjects (customer ids) keeps what `redact` takes out.

    Sent rows are deleted: they are on the broker already (where topic retention ends them) and are kept
    here only for the in-process transport's re-send. Unsent rows are still to go out: their data is
    replaced by `redact(event type, data)`, so what leaves after the erasure no longer carries it.
    Call it in the erasing transaction.
    """
    if not keys:
        return
    t = tables.outbox
    keys_param = sa.bindparam("keys", list(keys), type_=ARRAY(sa.Text))
    await session.execute(sa.delete(t).where(t.c.key == sa.any_(keys_param), t.c.sent_at.is_not(None)))
    rows = (
        await session.execute(
            sa.select(*message_columns(t))
            .where(t.c.key == sa.any_(keys_param), t.c.sent_at.is_(None))
            .order_by(t.c.id)
            .with_for_update()
        )
    ).all()
    if not rows:
        return
    payloads = []
    # A templated row gets its own, redacted payload (the template stays as it is for the other rows).
    for payload in await Templates(tables.outbox_template).payloads(await session.connection(), rows):
        doc = orjson.loads(payload)
        doc["data"] = redact(str(doc.get("type", "")), doc.get("data") or {})
        payloads.append(orjson.dumps(doc))
    table_name = f"{t.schema}.{t.name}" if t.schema else t.name
    await session.execute(
        sa.text(f"""
        UPDATE {table_name} o SET payload = v.payload, template_id = NULL
        FROM unnest(CAST(:ids AS bigint[]), CAST(:payloads AS bytea[])) AS v(id, payload) WHERE o.id = v.id
    """),
        {"ids": [r.id for r in rows], "payloads": payloads},
    )


def message_columns(t: sa.Table) -> list[sa.Column]:
    """What a reader of outbox rows selects to know each row's message (`Templates.payloads` fills templated ones)."""
    return [t.c.id, t.c.event_id, t.c.topic, t.c.key, t.c.payload, t.c.headers, t.c.template_id]


class Templates:
    """The outbox templates one reader has met, read once each (a template never changes once written)."""

    MAX_CACHED = 1024

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._known: dict[int, EnvelopeTemplate] = {}

    async def payloads(self, conn: AsyncConnection, rows: Sequence[sa.Row]) -> list[bytes]:
        """Each row's event bytes: its payload, or its template with its event_id, key and id in the holes."""
        missing = {r.template_id for r in rows if r.payload is None} - self._known.keys()
        if missing:
            if len(self._known) + len(missing) > self.MAX_CACHED:
                self._known.clear()
            t = self.table
            ids = sa.bindparam("ids", list(missing), type_=ARRAY(sa.BigInteger))
            for template_id, parts, holes in (
                await conn.execute(sa.select(t.c.template_id, t.c.parts, t.c.holes).where(t.c.template_id == sa.any_(ids)))
            ).all():
                self._known[template_id] = EnvelopeTemplate(tuple(bytes(p) for p in parts), tuple(holes))
        return [
            r.payload
            if r.payload is not None
            else self._known[r.template_id].fill({"event_id": r.event_id, "key": r.key, "id": str(r.id)})
            for r in rows
        ]


# A template's holes are named by the outbox column that fills them; "id" fills a number hole (a version).
TEMPLATE_HOLES = ("event_id", "key", "id")


def _message(row: sa.Row, payload: bytes) -> OutgoingMessage:
    headers = [CONTENT_TYPE_HEADER] + [(k, v.encode()) for k, v in (row.headers or {}).items()]
    return OutgoingMessage(topic=row.topic, value=payload, key=row.key.encode() if row.key else None, headers=headers)
