"""An erasure comes after every partner event Kafka acknowledged before it (R8; the proving ground, seed 1206).

Kafka acknowledges a partner's event before interaction applies it. A `customer.identified` still in the topic
when an admin erases the customer, applied after the erasure, made the customer again with the very e-mail the
erasure removed. The erasure now first waits until the Kafka door's group has committed past everything the
partner topics held at the request; when it cannot, it answers 503 `ingestion-behind` and erases nothing.
"""

import asyncio
import uuid

import orjson
import pytest

from shared.contracts.topics import PARTNER_EVENTS
from shared.db import make_engine
from tests.pii_scan import find_pii
from tests.services.conftest import serving
from tests.services.interaction.events import identified
from tests.support import produce

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka


async def customer_of(client, subject: str) -> str | None:
    resp = await client.get("/v1/customers", params={"source": "shop-eu", "external_id": subject})
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    return items[0]["customer_id"] if items else None


async def test_an_erasure_waits_for_the_events_kafka_acknowledged_before_it(database_url, kafka_bootstrap, topic_prefix):
    tag = uuid.uuid4().hex[:6]
    subject, first, later = f"C-ada-{tag}", f"ada-{tag}@example.com", f"ada.l-{tag}@example.com"
    settings = InteractionSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        run_workers=False,  # the Kafka door's consumer is started by hand below
        erasure_ingest_wait_s=1.0,
    )
    engine = make_engine(database_url)
    app = create_app(settings)
    try:
        async with serving(app) as client:
            created = await client.post("/v1/events", json=[identified(subject, email=first)])
            assert created.status_code == 200, created.text
            cid = await customer_of(client, subject)
            # Acknowledged by Kafka, not applied yet: no consumer runs.
            await produce(
                kafka_bootstrap,
                topic_prefix + PARTNER_EVENTS,
                [(subject.encode(), orjson.dumps(identified(subject, email=later)))],
            )

            behind = await client.post(f"/v1/customers/{cid}/erasure")
            assert behind.status_code == 503, behind.text
            assert behind.json()["type"].endswith("ingestion-behind")
            assert "not all applied" in behind.json()["detail"], behind.json()
            assert await find_pii(engine, [first]), "a refused erasure erases nothing"

            # The Kafka door starts half a second after the erasure request: the erasure waits for it.
            consumer = app.state.partner_ingest

            async def start_late() -> None:
                await asyncio.sleep(0.5)
                await consumer.run()

            running = asyncio.create_task(start_late())
            try:
                settings.erasure_ingest_wait_s = 60.0
                erased = await client.post(f"/v1/customers/{cid}/erasure")
                assert erased.status_code == 200, erased.text
                assert await consumer.caught_up(60), "the Kafka door applies the event (before the erasure, or now)"
            finally:
                consumer.stop()
                await running
            # The later e-mail was applied to Ada before the erasure, so it went with her; nothing made her again.
            assert await find_pii(engine, [first, later]) == []
            assert await customer_of(client, subject) is None
    finally:
        await engine.dispose()
