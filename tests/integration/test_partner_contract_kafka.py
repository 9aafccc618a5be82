"""The partner test of issue 16 through Kafka: from the served AsyncAPI document only, events of every partner
type generated from the schemas are applied in both bindings (none dead-lettered), and each event breaking one
constraint is dead-lettered with a reason naming the field. (HTTP: tests/services/gateway/test_asyncapi_contract.py.)
"""

import json
import uuid

import jsonschema_rs
import orjson
import pytest

from shared.contracts.topics import PARTNER_EVENTS, dlq
from shared.db import make_engine
from tests.services.conftest import serving
from tests.services.gateway.conftest import create_key, gateway_stack
from tests.services.gateway.test_asyncapi_contract import (
    SHIPPED,
    as_partner,
    broken_events,
    field_of,
    generate,
    inline,
    partner_messages,
    served,
)
from tests.support import produce, read_topic, scalar, wait_until

from interaction.app import create_app
from interaction.settings import InteractionSettings

pytestmark = pytest.mark.kafka
PER_TYPE = 8


def binary(event: dict) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The binary binding as the document's headers schema names it: `ce_<attribute>` headers, data as the value."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in event.items() if k != "data" and v is not None]
    return orjson.dumps(event.get("data", {})), [*headers, ("content-type", b"application/json")]


async def test_generated_events_are_applied_and_broken_ones_dead_lettered_naming_the_field(
    database_url, kafka_bootstrap, topic_prefix
) -> None:
    async with gateway_stack(database_url, services=("interaction",)) as stack:
        await create_key(stack, "partner", partner="shop-eu")
        async with stack.client() as admin:
            assert (await admin.post("/v1/event-types", json={"name": "order.shipped", "schema": SHIPPED})).status_code == 201
        doc = await served(stack)
    header_schema = jsonschema_rs.Draft202012Validator(
        inline({"$ref": "#/components/schemas/cloudevents.KafkaBinaryHeaders"}, doc)
    )
    envelope_names = set(doc["components"]["schemas"]["cloudevents.CloudEvent"]["properties"])
    valid = []
    for message in partner_messages(doc).values():
        for event in generate(inline(message["payload"], doc), PER_TYPE):
            # Each event its own id and customer, so one's erasure cannot take another's timeline entry.
            event = as_partner(event) | {"id": str(uuid.uuid4())}
            valid.append(event | {"subject": f"{event['subject'][:150]}-{uuid.uuid4().hex[:8]}"})
    assert len({e["type"] for e in valid}) == 12
    cases = broken_events(doc)
    topic = topic_prefix + PARTNER_EVENTS
    structured = [(e["subject"].encode(), orjson.dumps(e)) for e in valid[::2]]
    await produce(kafka_bootstrap, topic, structured)
    for event in valid[1::2]:
        # Extension attributes travel in the structured mode here: the binding's headers are the named ones.
        event = {k: v for k, v in event.items() if k in envelope_names}
        value, headers = binary(event)
        assert header_schema.is_valid({k: v.decode() for k, v in headers}), headers
        await produce(kafka_bootstrap, topic, [(event["subject"].encode(), value)], headers=headers)
    # json, not orjson: some break the 64-bit bound of a number on purpose.
    await produce(
        kafka_bootstrap, topic, [(f"case-{i}".encode(), json.dumps(event).encode()) for i, (*_, event) in enumerate(cases)]
    )

    settings = InteractionSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    engine = make_engine(database_url)
    timeline = [e["id"] for e in valid if e["type"] != "erasure.requested"]  # an erasure is no timeline entry
    async with serving(create_app(settings)):
        await wait_until(lambda: _on_timeline(engine, timeline), timeout=180, message="every generated event on the timeline")
        dead = await read_topic(kafka_bootstrap, dlq(topic), expected=len(cases), timeout=180)
    await engine.dispose()
    reasons = {r.key.decode(): dict(r.headers)["dlq_error"].decode() for r in dead}
    assert len(dead) == len(cases) and set(reasons) == {f"case-{i}" for i in range(len(cases))}, (
        "only the broken events are dead-lettered"
    )
    for i, (msg_id, path, rule, _) in enumerate(cases):
        assert field_of(path) in reasons[f"case-{i}"], (msg_id, ".".join(map(str, path)), rule, reasons[f"case-{i}"])


async def _on_timeline(engine, ids: list[str]) -> bool:
    found = await scalar(
        engine, "select count(*) from interaction.activity where source = 'shop-eu' and event_id = any(:ids)", ids=ids
    )
    return found == len(ids)
