"""The clv service on the real Kafka broker: interaction events in, values out through the outbox relay."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import SOURCE
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS
from tests.services.clv.support import purchase, refund, simulated_purchases
from tests.services.conftest import serving
from tests.support import produce_events, read_topic, scalar, wait_until

import clv.app
from clv.jobs import wait_for_jobs
from clv.settings import ClvSettings

pytestmark = pytest.mark.kafka


async def test_purchases_and_refunds_from_kafka_to_value_events(database_url, kafka_bootstrap, topic_prefix):
    as_of = datetime.now(UTC) - timedelta(days=1)
    events = simulated_purchases(150, as_of, seed=9)
    ada = uuid.uuid4()
    big = purchase(ada, "500.00", as_of - timedelta(days=3))
    events += [big, purchase(ada, "20.00", as_of - timedelta(days=1)), refund(big, "500.00", as_of, cancelled=True)]
    settings = ClvSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    app = clv.app.create_app(settings)
    async with serving(app) as client:
        await produce_events(
            kafka_bootstrap,
            topic_prefix + INTERACTION_EVENTS,
            [Envelope.wrap(e, source=SOURCE, subject=str(e.customer_id)) for e in events],
        )
        engine = app.state.runtime.engine

        async def applied() -> bool:
            r = await client.get(f"/v1/customers/{ada}/value")
            return r.status_code == 200 and r.json()["by_currency"][0]["purchase_count"] == 1

        await wait_until(applied, timeout=90, message="events consumed from Kafka")
        assert await scalar(engine, "select count(*) from clv.purchase") == len(events) - 1
        body = (await client.get(f"/v1/customers/{ada}/value")).json()["by_currency"][0]
        assert body["historical_value"] == "20.0000", "the cancelled order does not count"

        fit = (await client.post("/v1/value/models/fits", json={"currency": "EUR"})).json()
        await wait_for_jobs(app)
        assert (await client.get(f"/v1/value/models/fits/{fit['id']}")).json()["status"] == "succeeded"
        run = (await client.post("/v1/value/scorings", json={"currency": "EUR"})).json()
        await wait_for_jobs(app)
        scored = (await client.get(f"/v1/value/scorings/{run['id']}")).json()
        assert scored["status"] == "succeeded" and scored["events_published"] == scored["customers"]
        records = await read_topic(kafka_bootstrap, topic_prefix + CLV_EVENTS, scored["customers"], timeout=60)
    values = [Envelope.from_json(r.value) for r in records]
    assert {v.type for v in values} == {"customer.value_updated"}
    mine = next(v for v in values if v.subject == str(ada))
    assert mine.data["historical_value"] == "20.0000" and mine.data["tier"] in {"platinum", "gold", "silver", "bronze"}
