"""The Kafka door for partners: structured and binary CloudEvents in, malformed ones to the DLQ with a reason."""

import orjson
import pytest

from shared.contracts.topics import INTERACTION_EVENTS, PARTNER_EVENTS, dlq
from shared.db import make_engine
from tests.services.conftest import serving
from tests.services.test_ingestion_http import order
from tests.support import produce, read_topic, scalar, wait_until

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka


async def test_partner_topic_accepts_both_bindings_and_dead_letters_the_malformed(database_url, kafka_bootstrap, topic_prefix):
    topic = topic_prefix + PARTNER_EVENTS
    structured = order("C-1", order_id="S-1")
    binary = order("C-2", order_id="B-1")
    headers = [(f"ce_{k}", str(v).encode()) for k, v in binary.items() if k != "data"]
    unknown = order("C-3", type="order.teleported")
    no_subject = order(subject=None)
    foreign = order("C-5", order_id="F-1")  # names another partner's customer (security class 2)
    foreign["data"]["identifiers"] = {"external_ids": {"victim-shop": "V-1"}}
    await produce(
        kafka_bootstrap,
        topic,
        [
            (b"C-1", orjson.dumps(structured)),
            (b"C-3", orjson.dumps(unknown)),
            (b"C-4", orjson.dumps(no_subject)),
            (b"C-1", orjson.dumps(structured)),
            (b"C-5", orjson.dumps(foreign)),
        ],
    )
    await produce(kafka_bootstrap, topic, [(b"C-2", orjson.dumps(binary["data"]))], headers=headers)

    settings = InteractionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    engine = make_engine(database_url)
    async with serving(create_app(settings)) as client:
        await wait_until(lambda: _purchases(engine, 2), message="both valid orders stored")
        dead = await read_topic(kafka_bootstrap, dlq(topic), expected=3)
        http_again = await client.post("/v1/events", json=[structured])
    reasons = sorted(dict(r.headers)["dlq_error"].decode() for r in dead)
    assert any("unknown event type 'order.teleported'" in r for r in reasons)
    assert any("subject" in r for r in reasons)
    assert any("'victim-shop' is not your source" in r for r in reasons)
    # The same event through the other door is a duplicate: both doors share one inbox.
    assert http_again.json()["results"][0]["status"] == "duplicate"
    assert await scalar(engine, "select count(*) from interaction.purchase") == 2
    await engine.dispose()


async def _purchases(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from interaction.purchase") == n


async def test_custom_event_types_through_the_partner_topic(database_url, kafka_bootstrap, topic_prefix):
    """A registered custom type is applied from Kafka in both bindings and published on the domain topic as
    `custom_event.recorded`; an invalid one and an unregistered type are dead-lettered with the reason."""
    topic = topic_prefix + PARTNER_EVENTS
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
    valid = order("C-1", type="order.shipped", data={"order_id": "S-1"})
    binary = order("C-2", type="order.shipped", data={"order_id": "S-2"})
    headers = [(f"ce_{k}", str(v).encode()) for k, v in binary.items() if k != "data"]
    invalid = order("C-3", type="order.shipped", data={"carrier": "dhl"})
    unknown = order("C-4", type="order.teleported", data={})

    settings = InteractionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    engine = make_engine(database_url)
    async with serving(create_app(settings)) as client:
        registered = await client.post("/v1/event-types", json={"name": "order.shipped", "schema": schema})
        assert registered.status_code == 201, registered.text
        await produce(
            kafka_bootstrap,
            topic,
            [(b"C-1", orjson.dumps(valid)), (b"C-3", orjson.dumps(invalid)), (b"C-4", orjson.dumps(unknown))],
        )
        await produce(kafka_bootstrap, topic, [(b"C-2", orjson.dumps(binary["data"]))], headers=headers)
        await wait_until(lambda: _shipped(engine, 2), message="both valid custom events stored")
        dead = await read_topic(kafka_bootstrap, dlq(topic), expected=2)
        published = await read_topic(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, expected=4)
    reasons = sorted(dict(r.headers)["dlq_error"].decode() for r in dead)
    assert any("'order_id' is a required property" in r for r in reasons), reasons
    assert any("unknown event type 'order.teleported'" in r and "order.shipped" in r for r in reasons), reasons
    recorded = [orjson.loads(r.value) for r in published if orjson.loads(r.value)["type"] == "custom_event.recorded"]
    assert sorted(e["data"]["data"]["order_id"] for e in recorded) == ["S-1", "S-2"]
    assert {e["data"]["event_type"] for e in recorded} == {"order.shipped"}
    await engine.dispose()


async def _shipped(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from interaction.activity where type = 'order.shipped'") == n
