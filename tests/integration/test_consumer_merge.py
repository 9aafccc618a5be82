"""Consumers merged into one (`ServiceRuntime.subscribe_together`) against the real broker and Postgres: the merged
group starts, per partition, where the slowest former group left off; each part applies an event exactly once
(its inbox name is kept); and an event one part cannot apply is dead-lettered without being kept from the other."""

import pytest
import sqlalchemy as sa

from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS, dlq
from shared.db import make_engine
from shared.messaging.inbox import InboxPart, Subscription
from shared.messaging.kafka import KafkaTransport
from tests.support import RecordingTransport, produce_events, purchase_events, read_topic, running_consumer, scalar, wait_until

from segmentation.tables import messaging as segmentation_tables

pytestmark = pytest.mark.kafka
A, B = "segmentation.merge_a", "segmentation.merge_b"


def recording_subscription(inbox_name: str, handled: list[str], poison: str | None = None) -> Subscription:
    async def handler(session, events) -> None:
        if any(e.envelope.id == poison for e in events):
            raise RuntimeError(f"{inbox_name} cannot apply {poison}")
        handled.extend(e.envelope.id for e in events)

    return Subscription(
        name=inbox_name.split(".")[1],
        topics=[INTERACTION_EVENTS],
        handler=handler,
        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded},
    )


async def _run_alone(database_url, bootstrap, topic_prefix, inbox_name, expected: int) -> list[str]:
    """The previous release's consumer `inbox_name`, run until it applied `expected` new events (then stopped,
    which commits the offsets of the batch in hand)."""
    handled: list[str] = []
    transport = KafkaTransport(bootstrap)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        inbox_name=inbox_name,
        subscription=recording_subscription(inbox_name, handled),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
    ):
        await wait_until(lambda: _at_least(handled, expected), message=f"{inbox_name} applied {expected} events")
    await transport.stop()
    return handled


def _merged(database_url, transport, topic_prefix, handled_a, handled_b, adopt=False, poison_for_b=None):
    """A and B as the parts of one consumer (group `segmentation.merged`); with `adopt`, taking over A's and B's
    groups as the service runtime would."""
    return running_consumer(
        database_url=database_url,
        transport=transport,
        group_id=topic_prefix + "segmentation.merged",
        parts=[
            InboxPart(A, recording_subscription(A, handled_a)),
            InboxPart(B, recording_subscription(B, handled_b, poison=poison_for_b)),
        ],
        adopt_from=[[topic_prefix + A], [topic_prefix + B]] if adopt else [],
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
    )


async def test_a_merged_consumer_starts_where_the_slowest_former_group_stands_and_each_part_applies_once(
    database_url, kafka_bootstrap, topic_prefix
):
    engine = make_engine(database_url)
    topic = topic_prefix + INTERACTION_EVENTS
    first, second, third = (purchase_events(n, customers=6, seed=s) for n, s in ((30, 1), (20, 2), (10, 3)))

    # The previous release: A has read `first` and `second`, B only `first` (it lags behind).
    await produce_events(kafka_bootstrap, topic, first)
    await _run_alone(database_url, kafka_bootstrap, topic_prefix, A, 30)
    await _run_alone(database_url, kafka_bootstrap, topic_prefix, B, 30)
    await produce_events(kafka_bootstrap, topic, second)
    await _run_alone(database_url, kafka_bootstrap, topic_prefix, A, 20)

    # The upgrade: new events, and one of the first again (a partner resending it).
    await produce_events(kafka_bootstrap, topic, [*third, first[7]])
    handled_a: list[str] = []
    handled_b: list[str] = []
    transport = RecordingTransport(kafka_bootstrap)
    async with _merged(database_url, transport, topic_prefix, handled_a, handled_b, adopt=True):
        await wait_until(lambda: _at_least(transport.fetched, 31), message="the merged consumer fetched what B had not")
        await wait_until(lambda: _at_least(handled_b, 30), message="B's part applied what it had not")
    await transport.stop()

    # It started where B, the slower, stood: none of the first events was fetched again...
    assert sorted(m.value for m in transport.fetched) == sorted(e.to_json() for e in [*second, *third, first[7]])
    # ... A's part skipped what A had applied, B's part applied all it had not, and neither the resent one.
    assert sorted(handled_a) == sorted(e.id for e in third)
    assert sorted(handled_b) == sorted(e.id for e in [*second, *third])
    for inbox_name, count in ((A, 60), (B, 60)):
        assert await scalar(engine, "select count(*) from segmentation.inbox where consumer = :c", c=inbox_name) == count
    await engine.dispose()


async def test_an_event_one_part_cannot_apply_is_dead_lettered_and_still_applied_by_the_other(
    database_url, kafka_bootstrap, topic_prefix
):
    engine = make_engine(database_url)
    topic = topic_prefix + INTERACTION_EVENTS
    events = purchase_events(12, customers=4, seed=4)
    poison = events[5].id
    await produce_events(kafka_bootstrap, topic, events)
    handled_a: list[str] = []
    handled_b: list[str] = []
    transport = KafkaTransport(kafka_bootstrap)
    async with _merged(database_url, transport, topic_prefix, handled_a, handled_b, poison_for_b=poison):
        dead = await read_topic(kafka_bootstrap, dlq(topic), 1)
        await wait_until(lambda: _at_least(set(handled_b), 11), message="B applied every other event")
    await transport.stop()

    headers = dict(dead[0].headers)
    assert dead[0].value == events[5].to_json()
    assert B.encode() in headers["dlq_error"] and A.encode() not in headers["dlq_error"]
    assert headers["dlq_consumer"] == (topic_prefix + "segmentation.merged").encode()
    claimed = {
        name: set(await _rows(engine, "select event_id from segmentation.inbox where consumer = :c", c=name)) for name in (A, B)
    }
    assert claimed[A] == {e.id for e in events}  # A applied the event B could not
    assert claimed[B] == {e.id for e in events} - {poison}
    assert set(handled_b) == {e.id for e in events} - {poison}
    await engine.dispose()


async def _rows(engine, sql: str, **params) -> list:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text(sql), params)).scalars())


async def _at_least(items, expected: int) -> bool:
    return len(items) >= expected
