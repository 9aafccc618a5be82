"""A renamed consumer (`Subscription.former_names`) against the real broker and Postgres: its new group starts
where the former group left off, and what the inbox holds under the former name stays applied."""

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import Subscription, claim
from shared.messaging.kafka import KafkaTransport
from shared.messaging.tables import rename_inbox_consumer
from tests.support import RecordingTransport, produce_events, purchase_events, running_consumer, scalar, wait_until

from segmentation.tables import messaging as segmentation_tables

pytestmark = pytest.mark.kafka
OLD, NEW = "segmentation.purchases", "segmentation.interaction_facts"


def recording_subscription(name: str, handled: list[str], former_names: tuple[str, ...] = ()) -> Subscription:
    async def handler(session, events) -> None:
        handled.extend(e.envelope.id for e in events)

    return Subscription(
        name=name,
        former_names=former_names,
        topics=[INTERACTION_EVENTS],
        handler=handler,
        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded},
    )


async def test_a_renamed_consumer_resumes_after_its_former_groups_offsets_and_keeps_its_dedupe(
    database_url, kafka_bootstrap, topic_prefix
):
    engine = make_engine(database_url)
    topic = topic_prefix + INTERACTION_EVENTS
    before, after = purchase_events(30, customers=6, seed=1), purchase_events(20, customers=6, seed=2)

    # The previous release: the consumer "purchases" applies the first events and commits their offsets.
    await produce_events(kafka_bootstrap, topic, before)
    handled_old: list[str] = []
    old_transport = KafkaTransport(kafka_bootstrap)
    async with running_consumer(
        database_url=database_url,
        transport=old_transport,
        inbox_name=OLD,
        subscription=recording_subscription("purchases", handled_old),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
    ):
        await wait_until(lambda: _is(len(handled_old), 30), message="the former consumer applied the first events")
    await old_transport.stop()  # stopping commits the offsets of the batch in hand

    # The upgrade: new events, and one of the first again (a partner resending it).
    await produce_events(kafka_bootstrap, topic, [*after, before[7]])
    handled_new: list[str] = []
    transport = RecordingTransport(kafka_bootstrap)
    async with running_consumer(
        database_url=database_url,
        transport=transport,
        inbox_name=NEW,
        subscription=recording_subscription("interaction_facts", handled_new, ("purchases",)),
        former_inbox_names=[OLD],
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
    ):
        await wait_until(lambda: _is(len(transport.fetched), 21), message="the renamed consumer fetched the new events")
        await wait_until(lambda: _is(len(handled_new), 20), message="the renamed consumer applied the new events")
    await transport.stop()

    # It started after the former group's offsets: none of the first events was fetched again...
    assert sorted(m.value for m in transport.fetched) == sorted(e.to_json() for e in [*after, before[7]])
    # ... and the resent one, fetched, was recognised as applied under the former name.
    assert sorted(handled_new) == sorted(e.id for e in after)
    assert await scalar(engine, "select count(*) from segmentation.inbox where consumer = :c", c=NEW) == 20
    await engine.dispose()


async def _is(value: int, expected: int) -> bool:
    return value >= expected


async def test_the_renaming_migration_moves_the_inbox_rows_to_the_new_name(database_url):
    engine = make_engine(database_url)
    inbox = segmentation_tables.inbox
    async with make_session_factory(engine)() as session, session.begin():
        await claim(session, inbox, OLD, [("s", "1"), ("s", "2"), ("s", "3")])
        await claim(session, inbox, NEW, [("s", "3"), ("s", "4")])  # written by a replica of the new release
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: rename_inbox_consumer(Operations(MigrationContext.configure(c)), "segmentation", OLD, NEW))
        rows = (await conn.execute(sa.text("select consumer, event_id from segmentation.inbox order by 2"))).all()
    assert [tuple(r) for r in rows] == [(NEW, "1"), (NEW, "2"), (NEW, "3"), (NEW, "4")]
    await engine.dispose()
