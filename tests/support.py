"""Helpers the messaging and service tests share: producing to the real broker, running consumers, waiting."""

import asyncio
import contextlib
import functools
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import SOURCE, PurchaseRecorded
from shared.db import make_engine, make_session_factory
from shared.internal_auth import HEADER as INTERNAL_TOKEN_HEADER
from shared.internal_auth import Caller, TokenSigner
from shared.messaging.inbox import InboxConsumer, InboxPart, Subscription
from shared.messaging.kafka import KafkaTransport
from shared.messaging.tables import MessagingTables
from shared.messaging.transport import IncomingMessage, Transport

# Who tests that call a service directly are, to the service: an admin, as the gateway would vouch.
TEST_CALLER = Caller("test-admin", "admin")


@functools.cache
def gateway_signer() -> TokenSigner:
    """Signs with the session's gateway key (tests/conftest.py puts it in the environment)."""
    return TokenSigner(os.environ["INTERNAL_TOKEN_PRIVATE_KEY"])


class InternalToken(httpx.Auth):
    """Adds the token the gateway would sign for `audience` to each request that does not carry one already."""

    def __init__(self, audience: str, caller: Caller = TEST_CALLER) -> None:
        self.audience, self.caller = audience, caller

    def auth_flow(self, request: httpx.Request):
        if INTERNAL_TOKEN_HEADER not in request.headers:
            request.headers[INTERNAL_TOKEN_HEADER] = gateway_signer().token(self.audience, self.caller)
        yield request


def purchase_events(n: int, customers: int = 10, seed: int = 1) -> list[Envelope]:
    """`purchase.recorded` events spread over `customers` customers, in time order per customer."""
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(customers)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        cid = ids[i % customers]
        payload = PurchaseRecorded(
            customer_id=cid,
            purchase_id=uuid.uuid4(),
            source="shop",
            order_id=f"o{i}",
            amount=Decimal(rng.randint(100, 10000)) / 100,
            currency="EUR",
            channel="web",
            occurred_at=start + timedelta(minutes=i),
        )
        events.append(Envelope.wrap(payload, source=SOURCE, subject=str(cid)))
    return events


async def produce(
    bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes]], headers: list[tuple[str, bytes]] | None = None
) -> None:
    """Send (key, value) pairs with an idempotent producer; returns once Kafka acknowledged every one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_events(bootstrap: str, topic: str, events: list[Envelope]) -> None:
    await produce(bootstrap, topic, [(e.subject.encode() if e.subject else None, e.to_json()) for e in events])


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Every record of `topic` from the start, once `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
    finally:
        await consumer.stop()
    return records


async def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list:
    """Every record `topic` holds now (up to its end offsets when called), in partition and offset order.

    What a service has published: its relay deletes the outbox rows Kafka has (shared/messaging/outbox.py)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(timeout):
            await consumer._client.force_metadata_update()  # the cluster's topics and their partitions
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                return []
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(r for r in part if r.offset < ends[TopicPartition(r.topic, r.partition)])
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 60.0, interval: float = 0.2, message: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if await check():
                return
        except Exception:  # noqa: BLE001 - the system may be mid-recovery; keep polling until the deadline
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


async def complete_openapi(client: httpx.AsyncClient, timeout: float = 60.0) -> dict:
    """The gateway's merged OpenAPI document once every service's part is in it.

    The gateway never waits long for a service's document (3 s): on a loaded machine a service still generating its
    schema is left out of the first build and marked in `info.x-missing-services`, then fetched again. Tests that
    read another service's routes or schemas wait for the complete document instead of reading a partial one.
    """
    doc: dict = {}

    async def complete() -> bool:
        nonlocal doc
        doc = (await client.get("/openapi.json")).json()
        return "x-missing-services" not in doc["info"]

    await wait_until(complete, timeout=timeout, interval=1.0, message="a merged OpenAPI document with every service")
    return doc


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(sql), params)).scalar()


class RecordingTransport(KafkaTransport):
    """The Kafka transport, keeping every message its consumers fetched."""

    fetched: list[IncomingMessage]

    def consumer(self, group_id, topics, pattern=None):
        inner = super().consumer(group_id, topics, pattern)
        fetched = self.fetched = getattr(self, "fetched", [])
        getmany = inner.getmany

        async def recording(timeout_ms: int, max_records: int) -> list[IncomingMessage]:
            batch = await getmany(timeout_ms, max_records)
            fetched.extend(batch)
            return batch

        inner.getmany = recording  # type: ignore[method-assign]
        return inner


@contextlib.asynccontextmanager
async def running_consumer(
    *,
    database_url: str,
    transport: Transport,
    subscription: Subscription | None = None,
    tables: MessagingTables,
    topic_prefix: str,
    inbox_name: str = "test.consumer",
    group_id: str | None = None,
    batch_size: int = 200,
    max_attempts: int = 2,
    former_inbox_names: Sequence[str] = (),
    parts: Sequence[InboxPart] = (),
    adopt_from: Sequence[Sequence[str]] | None = None,
) -> AsyncIterator[InboxConsumer]:
    """An inbox consumer running in a task; stopped gracefully (batch finished) on exit. Its group and those of
    `former_inbox_names` are the inbox names with the topic prefix, as the service runtime names them. With
    `parts` (several subscriptions together) give the `group_id` and the groups to `adopt_from`."""
    engine = make_engine(database_url, pool_size=4)
    consumer = InboxConsumer(
        group_id=group_id or topic_prefix + inbox_name,
        inbox_name=inbox_name,
        subscription=subscription,
        parts=parts,
        topic_prefix=topic_prefix,
        transport=transport,
        session_factory=make_session_factory(engine),
        tables=tables,
        batch_size=batch_size,
        max_attempts=max_attempts,
        poll_timeout_ms=200,
        adopt_from=[[topic_prefix + name for name in former_inbox_names]] if adopt_from is None else adopt_from,
        former_inbox_names=former_inbox_names,
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 60)
        await engine.dispose()
