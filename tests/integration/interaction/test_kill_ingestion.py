"""`kill -9` of the interaction process mid-ingestion over Kafka loses nothing Kafka acknowledged (R1, R5)."""

import os
import signal
import subprocess
import sys

import orjson
import pytest

from deploy.local.ports import free_port
from shared.contracts.topics import INTERACTION_EVENTS, PARTNER_EVENTS
from shared.db import make_engine
from tests.services.interaction.events import order, touch
from tests.support import produce, read_all, scalar, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def partner_events(n_orders: int, n_touches: int, customers: int) -> list[tuple[bytes, bytes]]:
    messages = []
    for i in range(n_orders):
        subject = f"K-{i % customers}"
        messages.append(
            (subject.encode(), orjson.dumps(order(subject, f"KO-{i}", f"{1 + i % 97}.50", at=f"2026-0{1 + i % 9}-01T10:00:00Z")))
        )
    for i in range(n_touches):
        subject = f"K-{i % customers}"
        messages.append((subject.encode(), orjson.dumps(touch(subject, "phone" if i % 2 else "email"))))
    return messages


async def test_kill_9_mid_ingestion_loses_nothing_acknowledged(database_url, kafka_bootstrap, topic_prefix, tmp_path):
    n_orders, n_touches = 3000, 1000
    await produce(kafka_bootstrap, topic_prefix + PARTNER_EVENTS, partner_events(n_orders, n_touches, 300))
    engine = make_engine(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "INTERACTION_CONSUMER_BATCH_SIZE": "100",
        "LOG_LEVEL": "WARNING",
    }

    def start() -> subprocess.Popen:
        port = free_port()
        log = open(tmp_path / f"interaction-{port}.log", "wb")
        return subprocess.Popen(
            [sys.executable, "-m", "interaction", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def applied() -> int:
        return await scalar(engine, "select count(*) from interaction.activity")

    async def mid_stream() -> bool:
        return 0 < await applied() < n_orders + n_touches

    first = start()
    try:
        await wait_until(mid_stream, timeout=90, interval=0.05, message="ingestion to be mid-stream")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert await applied() < n_orders + n_touches, "the kill must land mid-stream"
        second = start()
        try:

            async def done() -> bool:
                return await applied() == n_orders + n_touches

            await wait_until(done, timeout=180, message="every event applied")
            await wait_until(lambda: _outbox_is_empty(engine), timeout=60, message="every event published")
        finally:
            second.terminate()
            second.wait(40)
    finally:
        if first.poll() is None:
            first.kill()
    assert await scalar(engine, "select count(*) from interaction.purchase") == n_orders
    assert (
        await scalar(engine, "select count(*) from interaction.inbox where consumer = 'interaction.partner-ingest'")
        == n_orders + n_touches
    )
    assert await scalar(engine, "select count(*) from interaction.customer where merged_into is null") == 300
    assert await scalar(engine, "select sum(purchase_count) from interaction.customer") == n_orders
    # Once each: a relay killed between Kafka's ack and deleting the rows sends them again, under the same event ids.
    published: dict[str, set[str]] = {}
    for record in await read_all(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS):
        event = orjson.loads(record.value)
        if event["type"] == "purchase.recorded":
            published.setdefault(event["data"]["purchase_id"], set()).add(event["id"])
    assert len(published) == n_orders and all(len(ids) == 1 for ids in published.values()), "each purchase published once"
    await engine.dispose()


async def _outbox_is_empty(engine) -> bool:
    return await scalar(engine, "select count(*) from interaction.outbox") == 0
