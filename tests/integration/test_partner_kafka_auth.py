"""Security class 3 (docs/security.md): the Kafka door authenticates partners and binds each to its source.

Partners connect to the broker's SASL_PLAINTEXT listener with SCRAM-SHA-512 credentials. The ACLs that
onboarding grants (deploy/local/KafkaPartnerAdmin.java) let a partner write only `partner.events.<partner>`
and read only that topic's DLQ; the interaction consumer takes the topic's partner as the only source its
events may carry.
"""

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from deploy.local.kafka import add_partner
from shared.contracts.topics import PARTNER_EVENTS, dlq, partner_topic
from shared.db import make_engine
from tests.services.conftest import serving
from tests.services.test_ingestion_http import order
from tests.support import scalar, wait_until

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka


def scram(bootstrap: str, user: str, password: str) -> dict:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
        "request_timeout_ms": 10000,
    }


async def produce_as(client: dict, topic: str, events: list[dict]) -> None:
    producer = AIOKafkaProducer(**client, enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            await asyncio.wait_for(producer.send_and_wait(topic, orjson.dumps(e), key=e["subject"].encode()), 30)
    finally:
        await producer.stop()


async def read_as(client: dict, topic: str, group: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(topic, **client, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_partners_are_authenticated_bound_to_their_source_and_read_only_their_rejections(
    database_url, kafka_bootstrap, kafka_partner_bootstrap, topic_prefix
):
    run = uuid.uuid4().hex[:8]  # SCRAM users are broker-wide: unique per run
    a, b = f"shop-a-{run}", f"shop-b-{run}"
    await asyncio.gather(
        asyncio.to_thread(add_partner, kafka_bootstrap, a, "secret-a", topic_prefix),
        asyncio.to_thread(add_partner, kafka_bootstrap, b, "secret-b", topic_prefix),
    )
    as_a, as_b = scram(kafka_partner_bootstrap, a, "secret-a"), scram(kafka_partner_bootstrap, b, "secret-b")
    topic_a, topic_b = topic_prefix + partner_topic(a), topic_prefix + partner_topic(b)

    # Authenticated as A: its own event, and one claiming B's source.
    own, spoofed = order("C-1", order_id="A-1", source=a), order("C-2", order_id="B-1", source=b)
    await produce_as(as_a, topic_a, [own, spoofed])
    # The broker lets A write neither B's topic nor the platform's shared one.
    for foreign in (topic_b, topic_prefix + PARTNER_EVENTS):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce_as(as_a, foreign, [order("C-3", source=a)])
    # Without credentials, or with wrong ones, the partner listener refuses the connection.
    for refused in (
        {"bootstrap_servers": kafka_partner_bootstrap, "request_timeout_ms": 10000},
        scram(kafka_partner_bootstrap, a, "not-the-secret"),
    ):
        with pytest.raises(KafkaConnectionError):
            await produce_as(refused, topic_a, [order("C-4", source=a)])

    settings = InteractionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    engine = make_engine(database_url)
    try:
        async with serving(create_app(settings)):

            async def own_order_stored() -> bool:
                return await scalar(engine, "select count(*) from interaction.purchase") == 1

            await wait_until(own_order_stored, message="A's own order stored")
            [rejected] = await read_as(as_a, dlq(topic_a), f"{topic_prefix}partner-dlq.{a}", expected=1)
        assert orjson.loads(rejected.value)["id"] == spoofed["id"]
        reason = dict(rejected.headers)["dlq_error"].decode()
        assert f"source {b!r} is not yours" in reason and f"must have source {a!r}" in reason
        assert await scalar(engine, "select source from interaction.purchase") == a
        # B's genuine event with the id A tried to take is still applied: the spoof did not claim it.
        await produce_as(as_b, topic_b, [{**spoofed, "data": {**spoofed["data"], "order_id": "B-genuine"}}])
        async with serving(create_app(settings)):

            async def genuine_stored() -> bool:
                return await scalar(engine, "select count(*) from interaction.purchase where source = :s", s=b) == 1

            await wait_until(genuine_stored, message="B's genuine event applied")
    finally:
        await engine.dispose()
    # B may not read A's rejections (with its own group or any other).
    with pytest.raises(TopicAuthorizationFailedError):
        await read_as(as_b, dlq(topic_a), f"{topic_prefix}partner-dlq.{b}", expected=1)
