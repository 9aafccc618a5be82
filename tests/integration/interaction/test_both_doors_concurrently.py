"""Both doors at once, with the same events and the same people: each event applied once, one customer per person."""

import asyncio
import random

import orjson
import pytest

from shared.contracts.topics import PARTNER_EVENTS
from shared.db import make_engine
from tests.services.conftest import serving
from tests.services.interaction.conftest import trust
from tests.services.interaction.events import identified, order, touch
from tests.support import produce, scalar, wait_until

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka
PEOPLE = 60


def stream() -> list[dict]:
    """Each person is known to a shop and a crm under different ids, linked by one email."""
    rng = random.Random(3)
    events = []
    for n in range(PEOPLE):
        email = f"person{n}@example.com"
        events.append(identified(f"S-{n}", email=email, source="shop"))
        events.append(identified(f"K-{n}", email=email.upper(), source="crm"))
        events += [order(f"S-{n}", f"O-{n}-{i}", f"{i + 1}.00", source="shop") for i in range(3)]
        events += [touch(f"K-{n}", "phone", source="crm") for _ in range(2)]
    rng.shuffle(events)
    return events


async def test_http_and_kafka_doors_together_apply_each_event_once(database_url, kafka_bootstrap, topic_prefix):
    events = stream()
    settings = InteractionSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        relay_poll_interval_s=0.2,
        consumer_batch_size=50,
    )
    engine = make_engine(database_url)
    async with serving(create_app(settings)) as client:
        await trust(client, "shop", "crm")  # their emails may link their customers

        async def over_http() -> list[str]:
            statuses = []
            for i in range(0, len(events), 40):
                resp = await client.post("/v1/events", json=events[i : i + 40][::-1])
                assert resp.status_code == 200, resp.text
                statuses += [r["status"] for r in resp.json()["results"]]
            return statuses

        kafka = produce(
            kafka_bootstrap, topic_prefix + PARTNER_EVENTS, [(e["subject"].encode(), orjson.dumps(e)) for e in events]
        )
        statuses, _ = await asyncio.gather(over_http(), kafka)

        async def all_applied() -> bool:
            return await scalar(engine, "select count(*) from interaction.inbox") == len(events)

        await wait_until(all_applied, timeout=90, message="every event applied")
        await asyncio.sleep(1.0)  # let the consumer finish the redelivered tail (all duplicates now)
    assert set(statuses) <= {"accepted", "duplicate"}
    assert await scalar(engine, "select count(*) from interaction.activity") == len(events)
    assert await scalar(engine, "select count(*) from interaction.purchase") == PEOPLE * 3
    assert (
        await scalar(
            engine,
            """
        select count(distinct customer_id) from interaction.customer_identifier""",
        )
        == PEOPLE
    )
    assert (
        await scalar(
            engine,
            """
        select count(*) from interaction.customer_identifier s join interaction.customer_identifier k
          on s.customer_id = k.customer_id
        where s.source = 'shop' and k.source = 'crm' and substr(s.external_id, 3) = substr(k.external_id, 3)""",
        )
        == PEOPLE
    )
    assert await scalar(engine, "select sum(purchase_count) from interaction.customer where merged_into is null") == PEOPLE * 3
    await engine.dispose()
