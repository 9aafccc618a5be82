"""Fault injection on the messaging core (R1, R5): kill -9 the broker, kill -9 a consumer, restart Postgres.

Each test keeps a ledger of what was acknowledged (committed to the outbox, or acked by Kafka) and checks
after recovery that every acknowledged event was applied exactly once.
"""

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import text

from deploy.local.ports import free_port
from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import asyncpg_dsn, make_engine
from shared.messaging.kafka import KafkaTransport
from shared.messaging.metrics import EVENTS_DEAD_LETTERED
from shared.messaging.outbox import OutboxRelay
from shared.messaging.transport import TransportError
from shared.migrations import upgrade
from tests.infra import migrations_dir
from tests.integration.test_outbox_relay import enqueue
from tests.support import produce_events, purchase_events, running_consumer, scalar, wait_until

from interaction.tables import messaging as interaction_tables
from segmentation.purchase_summary.projection import purchases_subscription
from segmentation.tables import messaging as segmentation_tables

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def applied(engine) -> int:
    return await scalar(engine, "select coalesce(sum(order_count), 0) from segmentation.purchase_summary")


async def test_broker_kill_9_mid_stream_loses_nothing_and_applies_once(database_url, own_kafka, topic_prefix):
    engine = make_engine(database_url)
    transport = KafkaTransport(own_kafka.bootstrap)
    relay = OutboxRelay(
        engine=engine,
        dsn=asyncpg_dsn(database_url),
        tables=interaction_tables,
        schema="interaction",
        transport=transport,
        batch_size=100,
        poll_interval_s=0.2,
    )
    relay_task = asyncio.create_task(relay.run())
    events = purchase_events(900, customers=30)
    chunks = [events[i : i + 30] for i in range(0, len(events), 30)]

    async with running_consumer(
        database_url=database_url,
        transport=transport,
        subscription=purchases_subscription(),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        inbox_name="segmentation.interaction_facts",
    ):
        for i, chunk in enumerate(chunks):
            await enqueue(engine, topic_prefix, chunk)  # acknowledged: committed to the outbox
            if i == len(chunks) // 3:
                await wait_until(lambda: _some_applied(engine), message="the stream to be flowing")
                await asyncio.to_thread(own_kafka.kill)
                with pytest.raises(TransportError):
                    await transport.check()  # readiness reports the outage
            if i == len(chunks) // 2:
                await asyncio.to_thread(own_kafka.restart)
            await asyncio.sleep(0.05)
        await wait_until(lambda: _equals(engine, len(events)), timeout=120, message="every event applied")
        await transport.check()
    relay.stop()
    await relay_task
    await transport.stop()

    assert await applied(engine) == len(events)
    ledger = {e.id for e in events}
    async with engine.connect() as conn:
        inbox = {r[0] for r in await conn.execute(text("select event_id from segmentation.inbox"))}
    assert inbox == ledger
    await engine.dispose()


async def _some_applied(engine) -> bool:
    return await applied(engine) > 0


async def _equals(engine, n: int) -> bool:
    return await applied(engine) == n


async def test_consumer_process_kill_9_mid_batch_applies_every_event_once(database_url, kafka_bootstrap, topic_prefix, tmp_path):
    engine = make_engine(database_url)
    events = purchase_events(4000, customers=200)
    await produce_events(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, events)  # acknowledged by Kafka
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "SEGMENTATION_CONSUMER_BATCH_SIZE": "100",
        "LOG_LEVEL": "WARNING",
    }

    def start(port: int) -> subprocess.Popen:
        log = open(tmp_path / f"segmentation-{port}.log", "wb")
        return subprocess.Popen(
            [sys.executable, "-m", "segmentation", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    first = start(free_port())
    try:
        await wait_until(
            lambda: _between(engine, 1, len(events) - 1), timeout=90, interval=0.05, message="the consumer to be mid-stream"
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = await applied(engine)
        assert killed_at < len(events), "the kill must land mid-stream"
        second = start(free_port())
        try:
            # Only a hang detector: the new process first joins its consumer groups (the killed member holds its
            # partitions until its session expires), on a machine that may be busy.
            await wait_until(lambda: _equals(engine, len(events)), timeout=300, message="every event applied")
        finally:
            second.terminate()
            second.wait(40)
    finally:
        if first.poll() is None:
            first.kill()
    assert await applied(engine) == len(events)
    assert await scalar(engine, "select count(*) from segmentation.inbox") == len(events)
    await engine.dispose()


async def _between(engine, low: int, high: int) -> bool:
    return low <= await applied(engine) <= high


async def test_postgres_restart_mid_load_is_retried_not_dead_lettered(own_postgres, kafka_bootstrap, topic_prefix):
    own_postgres.create_database("crm")
    url = own_postgres.async_url("crm")
    await asyncio.to_thread(upgrade, migrations_dir("segmentation"), "segmentation", url)
    engine = make_engine(url)
    events = purchase_events(3000, customers=100)
    await produce_events(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, events)
    transport = KafkaTransport(kafka_bootstrap)
    group = topic_prefix + "segmentation.interaction_facts"
    dead_before = EVENTS_DEAD_LETTERED.labels(group)._value.get()

    async with running_consumer(
        database_url=url,
        transport=transport,
        subscription=purchases_subscription(),
        tables=segmentation_tables,
        topic_prefix=topic_prefix,
        inbox_name="segmentation.interaction_facts",
        batch_size=50,
    ):
        await wait_until(lambda: _between(engine, 1, len(events) - 1), interval=0.05, message="mid-stream")
        await asyncio.to_thread(own_postgres.kill)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_postgres.start)
        await wait_until(lambda: _equals(engine, len(events)), timeout=120, message="every event applied")
    await transport.stop()

    assert await applied(engine) == len(events)
    assert await scalar(engine, "select count(*) from segmentation.inbox") == len(events)
    assert EVENTS_DEAD_LETTERED.labels(group)._value.get() == dead_before, "an outage is not a poison event"
    await engine.dispose()
