"""The inbox consumer against real Kafka and Postgres: R2 (replay), R3 (order), R4 (poison → DLQ)."""

import asyncio
import uuid
from typing import ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Envelope, Payload
from shared.contracts.interaction import SOURCE
from shared.contracts.topics import INTERACTION_EVENTS, dlq
from shared.db import make_engine
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.kafka import KafkaTransport
from tests.support import produce, produce_events, purchase_events, read_topic, running_consumer, scalar, wait_until

from segmentation.purchase_summary.projection import purchases_subscription
from segmentation.tables import messaging as segmentation_tables

pytestmark = pytest.mark.kafka
TOPIC = INTERACTION_EVENTS


async def projection_snapshot(engine) -> list:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "select customer_id, currency, order_count, total_spend, first_purchase_at, last_purchase_at "
                    "from segmentation.purchase_summary order by customer_id, currency"
                )
            )
        ).all()


async def test_redelivery_and_replay_from_offset_zero_change_nothing(database_url, kafka_bootstrap, topic_prefix):
    engine = make_engine(database_url)
    transport = KafkaTransport(kafka_bootstrap)
    events = purchase_events(300, customers=12)
    await produce_events(kafka_bootstrap, topic_prefix + TOPIC, events)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=purchases_subscription(),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        inbox_name="segmentation.interaction_facts",
    ):
        await wait_until(lambda: _applied(engine, 300), message="300 applied")
    before = await projection_snapshot(engine)
    assert sum(r.order_count for r in before) == 300

    # Redelivery: the same events published again.
    await produce_events(kafka_bootstrap, topic_prefix + TOPIC, events[:100])
    # Replay: a new consumer group reads the topic from offset 0 into the same inbox.
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=purchases_subscription(),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        inbox_name="segmentation.interaction_facts",
        group_id=topic_prefix + "replay",
    ):
        await wait_until(
            lambda: _committed(transport, topic_prefix + "replay", topic_prefix + TOPIC, 400), message="replay group caught up"
        )
    assert await projection_snapshot(engine) == before
    assert await scalar(engine, "select count(*) from segmentation.inbox") == 300
    await transport.stop()
    await engine.dispose()


async def _applied(engine, n: int) -> bool:
    return await scalar(engine, "select coalesce(sum(order_count), 0) from segmentation.purchase_summary") == n


async def _committed(transport: KafkaTransport, group: str, topic: str, total: int) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=transport.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic) >= total


class Step(Payload):
    """A test event whose effect depends on order: step n must follow step n-1 of the same customer."""

    EVENT_TYPE: ClassVar[str] = "test.step"
    customer: str
    n: int


async def apply_steps(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    for e in events:
        step: Step = e.payload
        moved = await session.execute(
            sa.text("update step_state set last = :n where customer = :c and last = :n - 1"), {"n": step.n, "c": step.customer}
        )
        if moved.rowcount != 1:
            await session.execute(
                sa.text("insert into step_violation (customer, n) values (:c, :n)"), {"c": step.customer, "n": step.n}
            )


async def test_one_customers_events_apply_in_order_across_partitions_and_restarts(database_url, kafka_bootstrap, topic_prefix):
    engine = make_engine(database_url)
    customers = [f"c{i}" for i in range(9)]
    async with engine.begin() as conn:
        await conn.execute(sa.text("create table step_state (customer text primary key, last int not null)"))
        await conn.execute(sa.text("create table step_violation (customer text, n int)"))
        for c in customers:
            await conn.execute(sa.text("insert into step_state values (:c, 0)"), {"c": c})
    steps = 60
    events = [Envelope.wrap(Step(customer=c, n=n), source=SOURCE, subject=c) for n in range(1, steps + 1) for c in customers]
    await produce_events(kafka_bootstrap, topic_prefix + TOPIC, events)

    subscription = Subscription(name="steps", topics=[TOPIC], event_types={Step.EVENT_TYPE: Step}, handler=apply_steps)
    transport = KafkaTransport(kafka_bootstrap)
    total = len(events)
    # Stop and restart the consumer repeatedly mid-stream, with small batches so restarts land mid-way.
    for _ in range(4):
        async with running_consumer(
            database_url=database_url,
            transport=transport,
            subscription=subscription,
            tables=segmentation_tables,
            topic_prefix=topic_prefix,
            batch_size=25,
        ):
            await asyncio.sleep(0.7)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=subscription,
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        batch_size=25,
    ):
        await wait_until(lambda: _inbox_is(engine, total), message="every step applied")

    assert await scalar(engine, "select count(*) from step_violation") == 0
    assert await scalar(engine, "select count(*) from step_state where last = :n", n=steps) == len(customers)
    await transport.stop()
    await engine.dispose()


async def _inbox_is(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from segmentation.inbox") == n


async def test_poison_events_go_to_the_dlq_with_their_reason_while_the_rest_flow(database_url, kafka_bootstrap, topic_prefix):
    engine = make_engine(database_url)
    topic = topic_prefix + TOPIC
    good = purchase_events(40, customers=4)
    bad_shape = Envelope.wrap(Step(customer="x", n=1), source=SOURCE, subject="x")
    bad_shape.type = "purchase.recorded"  # a purchase.recorded whose data is not a purchase
    failing_id = str(uuid.uuid4())

    subscription = purchases_subscription()
    original = subscription.handler

    async def handler(session, events):
        if any(e.envelope.id == failing_id for e in events):
            raise RuntimeError("boom: this event always fails")
        await original(session, events)

    failing = purchase_events(1, customers=1, seed=99)[0]
    failing.id = failing_id
    values = [(e.subject.encode(), e.to_json()) for e in good[:20]]
    values += [(b"k", b"{not json"), (b"k", b"\xff\xfe"), (b"x", bad_shape.to_json()), (b"f", failing.to_json())]
    values += [(e.subject.encode(), e.to_json()) for e in good[20:]]
    await produce(kafka_bootstrap, topic, values)

    transport = KafkaTransport(kafka_bootstrap)
    sub = Subscription(name=subscription.name, topics=subscription.topics, event_types=subscription.event_types, handler=handler)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=sub,
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        max_attempts=2,
    ):
        await wait_until(lambda: _applied(engine, 40), message="all good events applied")
        dead = await read_topic(kafka_bootstrap, dlq(topic), expected=4)
    await transport.stop()
    await engine.dispose()

    reasons = {bytes(r.value): dict(r.headers) for r in dead}
    assert len(dead) == 4
    assert b"not valid JSON" in reasons[b"{not json"]["dlq_error"]
    assert b"not valid JSON" in reasons[b"\xff\xfe"]["dlq_error"]
    assert b"customer_id" in reasons[bad_shape.to_json()]["dlq_error"]
    failing_headers = reasons[failing.to_json()]
    assert b"boom" in failing_headers["dlq_error"]
    assert failing_headers["dlq_attempts"] == b"2"
    assert failing_headers["dlq_topic"] == topic.encode()


async def test_dead_letters_are_listed_and_replayed_once_the_cause_is_fixed(database_url, kafka_bootstrap, topic_prefix):
    from shared.messaging.dead_letters import list_dead_letters, replay_dead_letters

    engine = make_engine(database_url)
    topic = topic_prefix + TOPIC
    events = purchase_events(10, customers=2)
    broken = {"on": True}
    subscription = purchases_subscription()

    async def flaky_handler(session, batch):
        if broken["on"]:
            raise RuntimeError("downstream bug")
        await subscription.handler(session, batch)

    sub = Subscription(
        name=subscription.name, topics=subscription.topics, event_types=subscription.event_types, handler=flaky_handler
    )
    await produce_events(kafka_bootstrap, topic, events)
    transport = KafkaTransport(kafka_bootstrap)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=sub,
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        max_attempts=1,
    ):
        await read_topic(kafka_bootstrap, dlq(topic), expected=10)
        listed = await list_dead_letters(kafka_bootstrap, dlq(topic))
        assert len(listed) == 10 and all("downstream bug" in d["dlq_error"] for d in listed)

        broken["on"] = False  # the fix is deployed
        assert await replay_dead_letters(kafka_bootstrap, dlq(topic)) == 10
        assert await replay_dead_letters(kafka_bootstrap, dlq(topic)) == 0  # nothing is replayed twice
        await wait_until(lambda: _applied(engine, 10), message="replayed events applied")
    await transport.stop()
    await engine.dispose()
