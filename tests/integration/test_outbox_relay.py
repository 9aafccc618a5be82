"""The outbox relay against real Kafka and Postgres: order, marking sent, and the crash after the ack."""

import asyncio
import uuid
from datetime import timedelta

import orjson
import pytest
import sqlalchemy as sa

from shared.contracts.envelope import EnvelopeTemplate
from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import asyncpg_dsn, make_engine, make_session_factory
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.kafka import KafkaTransport
from shared.messaging.outbox import Outbox, OutboxRelay
from tests.support import purchase_events, read_topic, running_consumer, scalar, wait_until

from interaction.tables import messaging as interaction_tables
from segmentation.purchase_summary.projection import purchases_subscription
from segmentation.tables import messaging as segmentation_tables

pytestmark = pytest.mark.kafka


def relay_for(engine, database_url: str, transport: KafkaTransport) -> OutboxRelay:
    return OutboxRelay(
        engine=engine,
        dsn=asyncpg_dsn(database_url),
        tables=interaction_tables,
        schema="interaction",
        transport=transport,
        batch_size=50,
        poll_interval_s=0.2,
    )


async def enqueue(engine, topic_prefix: str, events) -> None:
    outbox = Outbox(interaction_tables, "interaction", topic_prefix)
    async with make_session_factory(engine)() as session, session.begin():
        await outbox.add(session, INTERACTION_EVENTS, events)


async def test_relay_sends_rows_in_order_per_key_and_deletes_them(database_url, kafka_bootstrap, topic_prefix):
    engine = make_engine(database_url)
    transport = KafkaTransport(kafka_bootstrap)
    events = purchase_events(120, customers=4)
    await enqueue(engine, topic_prefix, events)
    relay = relay_for(engine, database_url, transport)
    task = asyncio.create_task(relay.run())
    try:
        records = await read_topic(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, expected=120)
        await wait_until(lambda: _unsent_is(engine, 0), message="rows marked sent")
        # On Kafka a sent row is not kept: the broker holds the event from then on.
        assert await scalar(engine, "select count(*) from interaction.outbox") == 0
    finally:
        relay.stop()
        await task
        await transport.stop()
        await engine.dispose()

    assert len(records) == 120
    by_key: dict[bytes, list[str]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(orjson.loads(r.value)["id"])
    expected: dict[bytes, list[str]] = {}
    for e in events:
        expected.setdefault(e.subject.encode(), []).append(e.id)
    assert by_key == expected, "each customer's events must arrive in the order they were written"


async def _unsent_is(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from interaction.outbox where sent_at is null") == n


async def test_crash_between_kafka_ack_and_mark_sent_is_absorbed_by_the_inbox(
    database_url, kafka_bootstrap, topic_prefix, monkeypatch
):
    engine = make_engine(database_url)
    transport = KafkaTransport(kafka_bootstrap)
    events = purchase_events(30, customers=3)
    await enqueue(engine, topic_prefix, events)

    relay = relay_for(engine, database_url, transport)
    crashed = asyncio.Event()

    async def crash_before_marking(ids):
        crashed.set()
        raise ConnectionResetError("simulated crash after Kafka acknowledged the batch")

    monkeypatch.setattr(relay, "_mark_sent", crash_before_marking)
    task = asyncio.create_task(relay.run())
    await asyncio.wait_for(crashed.wait(), 30)
    relay.stop()
    await task
    assert await scalar(engine, "select count(*) from interaction.outbox where sent_at is null") == 30

    # A fresh relay (the restarted process) publishes the same rows again.
    relay2 = relay_for(engine, database_url, transport)
    task2 = asyncio.create_task(relay2.run())
    topic = topic_prefix + INTERACTION_EVENTS
    try:
        records = await read_topic(kafka_bootstrap, topic, expected=60)
        assert len(records) == 60, "every event was published twice"
        async with running_consumer(
            database_url=database_url,
            transport=transport,
            subscription=purchases_subscription(),
            tables=segmentation_tables,
            topic_prefix=topic_prefix,
            inbox_name="segmentation.interaction_facts",
        ):
            await wait_until(lambda: _inbox_count_is(engine, 30), message="30 events applied")
            await asyncio.sleep(1.0)  # give the duplicates time to arrive; they must change nothing
    finally:
        relay2.stop()
        await task2
        await transport.stop()

    assert await scalar(engine, "select sum(order_count) from segmentation.purchase_summary") == 30
    assert await scalar(engine, "select count(*) from segmentation.inbox") == 30
    await engine.dispose()


async def _inbox_count_is(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from segmentation.inbox") == n


async def test_templated_rows_go_out_as_their_filled_template_in_order_and_the_template_leaves_with_its_rows(
    database_url, kafka_bootstrap, topic_prefix
):
    engine = make_engine(database_url)
    transport = KafkaTransport(kafka_bootstrap)
    first, last = purchase_events(2, customers=1)
    customer = first.subject
    template = EnvelopeTemplate.of(
        lambda ids: first.model_copy(update={"id": ids["event_id"], "subject": ids["customer_id"]}), ("event_id", "customer_id")
    )
    templated = {str(uuid.uuid4()): key for key in (customer, str(uuid.uuid4()), str(uuid.uuid4()))}
    outbox = Outbox(interaction_tables, "interaction", topic_prefix)
    topic = topic_prefix + INTERACTION_EVENTS
    async with make_session_factory(engine)() as session, session.begin():
        await outbox.add(session, INTERACTION_EVENTS, [first])
        template_id = await outbox.add_template(
            session, template.parts, ["key" if h == "customer_id" else h for h in template.holes]
        )
        await session.execute(
            sa.text(
                "INSERT INTO interaction.outbox (event_id, topic, key, template_id) "
                "SELECT e, :topic, k, :template FROM unnest(CAST(:events AS text[]), CAST(:keys AS text[])) AS u(e, k)"
            ),
            {"topic": topic, "template": template_id, "events": list(templated), "keys": list(templated.values())},
        )
        await outbox.add(session, INTERACTION_EVENTS, [last])
    relay = relay_for(engine, database_url, transport)
    relay.retention = timedelta(0)
    await relay._delete_old_sent()
    assert await scalar(engine, "select count(*) from interaction.outbox_template") == 1, "kept while its rows are unsent"

    task = asyncio.create_task(relay.run())
    try:
        records = await read_topic(kafka_bootstrap, topic, expected=5)
        await wait_until(lambda: _unsent_is(engine, 0), message="rows marked sent")
    finally:
        relay.stop()
        await task
        await transport.stop()

    by_key: dict[bytes, list[bytes]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(r.value)
    expected = {key: template.fill({"event_id": event_id, "customer_id": key}) for event_id, key in templated.items()}
    assert by_key[customer.encode()] == [first.to_json(), expected[customer], last.to_json()]
    for key in list(templated.values())[1:]:
        assert by_key[key.encode()] == [expected[key]]

    await relay._delete_old_sent()
    assert await scalar(engine, "select count(*) from interaction.outbox") == 0
    assert await scalar(engine, "select count(*) from interaction.outbox_template") == 0, "gone with its last row"
    await engine.dispose()


async def test_on_the_in_process_transport_sent_rows_are_kept_and_a_starting_relay_sends_them_again(database_url):
    """The embedded mode's log dies with its process: the outbox keeps what it sent for `retention`, and the
    relay of the next process sends it again (its consumers' inboxes drop what they had applied)."""
    engine = make_engine(database_url)
    events = purchase_events(12, customers=3)
    await enqueue(engine, "", events)
    try:
        first = await _relayed_in_process(engine, database_url, 12)
        assert await scalar(engine, "select count(*) from interaction.outbox where sent_at is not null") == 12
        restarted = await _relayed_in_process(engine, database_url, 12)  # the next process: an empty log at first
    finally:
        await engine.dispose()
    assert len(first.messages(INTERACTION_EVENTS)) == 12
    customer = events[0].subject
    resent = [orjson.loads(m.value)["id"] for m in restarted.messages(INTERACTION_EVENTS) if m.key == customer.encode()]
    assert resent == [e.id for e in events if e.subject == customer], "one customer's events again, in order"


async def _relayed_in_process(engine, database_url: str, n: int) -> InProcessTransport:
    """A relay that retains what it sends, as the embedded mode's, run on a new in-process log until `n` are on it."""
    transport = InProcessTransport()
    relay = relay_for(engine, database_url, transport)
    relay.retain_sent = True
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _sent_count_is(transport, n), message=f"{n} rows sent")
        await wait_until(lambda: _unsent_is(engine, 0), message="rows marked sent")
    finally:
        relay.stop()
        await task
    return transport


async def _sent_count_is(transport: InProcessTransport, n: int) -> bool:
    return len(transport.messages(INTERACTION_EVENTS)) == n
