"""Two mechanics of the messaging core: NOTIFY wakes the relay at once; shutdown finishes the batch in hand."""

import asyncio

import pytest

from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import asyncpg_dsn, make_engine
from shared.messaging.inbox import Subscription
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.kafka import KafkaTransport
from shared.messaging.outbox import OutboxRelay
from shared.messaging.transport import OutgoingMessage
from tests.integration.test_outbox_relay import enqueue
from tests.support import purchase_events, read_all, read_topic, running_consumer, scalar

from interaction.tables import messaging as interaction_tables
from segmentation.purchase_summary.projection import apply_purchases, purchases_subscription
from segmentation.tables import messaging as segmentation_tables


@pytest.mark.kafka
async def test_notify_wakes_the_relay_long_before_its_next_poll(database_url, kafka_bootstrap, topic_prefix):
    engine = make_engine(database_url)
    transport = KafkaTransport(kafka_bootstrap)
    relay = OutboxRelay(
        engine=engine,
        dsn=asyncpg_dsn(database_url),
        tables=interaction_tables,
        schema="interaction",
        transport=transport,
        poll_interval_s=600,
    )  # polling alone would wait ten minutes
    task = asyncio.create_task(relay.run())
    try:
        while not relay.active:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the relay has drained the (empty) outbox and is waiting
        await enqueue(engine, topic_prefix, purchase_events(3))
        records = await read_topic(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, expected=3, timeout=30)
    finally:
        relay.stop()
        await task
        await transport.stop()
        await engine.dispose()
    assert len(records) == 3


async def test_stop_finishes_the_batch_in_hand_and_commits_it(database_url, topic_prefix):
    engine = make_engine(database_url)
    transport = InProcessTransport()
    events = purchase_events(50, customers=5)
    await produce_events_inprocess(transport, topic_prefix + INTERACTION_EVENTS, events)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_handler(session, batch):
        entered.set()
        await release.wait()  # stop() is called while this batch is being applied
        await apply_purchases(session, batch)

    subscription = Subscription(
        name="purchases", topics=[INTERACTION_EVENTS], event_types=purchases_subscription().event_types, handler=slow_handler
    )
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=subscription,
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        batch_size=100,
    ) as consumer:
        await asyncio.wait_for(entered.wait(), 10)
        consumer.stop()
        release.set()
    # running_consumer has awaited run(): the batch was applied and its offsets committed before returning.
    assert await scalar(engine, "select count(*) from segmentation.inbox") == 50
    committed = transport._committed[topic_prefix + "test.consumer"]
    assert sum(committed.values()) == 50
    await engine.dispose()


async def produce_events_inprocess(transport: InProcessTransport, topic: str, events) -> None:
    await transport.send_batch([OutgoingMessage(topic, e.to_json(), key=e.subject.encode()) for e in events])


@pytest.mark.kafka
async def test_a_send_larger_than_a_record_batch_keeps_each_keys_order(kafka_bootstrap, topic_prefix):
    """`KafkaTransport.send_batch` fills one record batch per partition (1 MB at most): a full one goes and another
    begins. 3 MB for two keys, and keyless messages among them, all arrive, each key's in the order sent."""
    topic = topic_prefix + "transport.big"
    messages = [
        OutgoingMessage(topic, f"{i:04d}".encode() + b"x" * 100_000, None if i % 10 == 9 else b"k%d" % (i % 2)) for i in range(30)
    ]
    transport = KafkaTransport(kafka_bootstrap)
    try:
        await transport.send_batch(messages)
    finally:
        await transport.stop()
    records = await read_all(kafka_bootstrap, topic)
    assert sorted(r.value[:4] for r in records) == sorted(m.value[:4] for m in messages)
    for key in (b"k0", b"k1"):
        sent = [m.value[:4] for m in messages if m.key == key]
        assert [r.value[:4] for r in records if r.key == key] == sent, f"{key!r} in the order sent"
    assert len({r.partition for r in records if r.key == b"k0"}) == 1, "one key, one partition"
