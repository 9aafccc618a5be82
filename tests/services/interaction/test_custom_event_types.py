"""Custom event types over HTTP on a real Postgres: registration (versions, hostile schemas), validation,
the timeline, the published `custom_event.recorded`, and erasure."""

import pytest

from tests.services.interaction.conftest import customer_of, outbox_events
from tests.services.interaction.events import event
from tests.services.interaction.test_profile import assert_contracts_honoured, post

SHIPPED_V1 = {
    "type": "object",
    "required": ["order_id"],
    "properties": {
        "order_id": {"type": "string", "maxLength": 100},
        "shipped_at": {"type": "string", "format": "date-time"},
        "contact": {"type": "string", "format": "email"},
    },
}
SHIPPED_V2 = {
    **SHIPPED_V1,
    "required": ["order_id", "carrier"],
    "properties": {**SHIPPED_V1["properties"], "carrier": {"type": "string", "enum": ["dhl", "ups"]}},
}


async def register(client, name: str, schema: dict, status: int = 201) -> dict:
    resp = await client.post("/v1/event-types", json={"name": name, "schema": schema})
    assert resp.status_code == status, resp.text
    return resp.json()


def shipped(subject: str, data: dict, **kw) -> dict:
    return event("order.shipped", subject, data, **kw)


async def test_a_registered_type_is_validated_stored_on_the_timeline_and_published(client, engine):
    refused = await client.post("/v1/events", json=[shipped("C-1", {"order_id": "A-1"})])
    assert refused.status_code == 422 and "unknown event type 'order.shipped'" in refused.text

    v1 = await register(client, "order.shipped", SHIPPED_V1)
    assert (v1["version"], v1["dataschema"]) == (1, "urn:crm:schema:order.shipped:v1")
    body = await post(
        client,
        [shipped("C-1", {"order_id": "A-1", "shipped_at": "2026-11-02T09:00:00Z", "identifiers": {"email": "ada@example.com"}})],
    )
    assert body["accepted"] == 1
    cid = await customer_of(engine, "C-1")
    timeline = (await client.get(f"/v1/customers/{cid}/timeline", params={"type": "order.shipped"})).json()
    assert [(e["type"], e["data"]["order_id"]) for e in timeline["items"]] == [("order.shipped", "A-1")]
    [published] = await outbox_events(engine, "custom_event.recorded")
    assert published["data"]["event_type"] == "order.shipped" and published["data"]["schema_version"] == 1
    assert published["data"]["data"] == {"order_id": "A-1", "shipped_at": "2026-11-02T09:00:00Z"}
    assert published["data"]["home_customer_id"] == str(cid) and published["data"]["source"] == "shop-eu"
    await assert_contracts_honoured(engine)

    bad = await client.post(
        "/v1/events",
        json=[
            shipped("C-1", {"shipped_at": "2026-11-02T09:00:00Z"}),
            shipped("C-1", {"order_id": "A-2", "shipped_at": "yesterday"}),
            shipped("C-1", {"order_id": "A-3", "contact": "not an email"}),
            event("order.teleported", "C-1", {}),
        ],
    )
    assert bad.status_code == 422
    reasons = [r["reason"] for r in bad.json()["results"]]
    assert "'order_id' is a required property" in reasons[0]
    assert "data.shipped_at" in reasons[1] and "date-time" in reasons[1]
    assert "data.contact" in reasons[2] and "email" in reasons[2]
    assert "unknown event type 'order.teleported'" in reasons[3] and "order.shipped" in reasons[3]

    listed = (await client.get("/v1/event-types")).json()["items"]
    assert [(t["name"], t["version"], t["schema"]) for t in listed] == [("order.shipped", 1, SHIPPED_V1)]


async def test_versions_old_ones_still_validate_the_events_that_name_them(client, engine):
    await register(client, "order.shipped", SHIPPED_V1)
    v2 = await register(client, "order.shipped", SHIPPED_V2)
    assert v2["version"] == 2
    results = (
        await client.post(
            "/v1/events",
            json=[
                shipped("C-1", {"order_id": "A-1"}, dataschema="urn:crm:schema:order.shipped:v1"),
                shipped("C-1", {"order_id": "A-2"}),  # no dataschema: the newest, which requires a carrier
                shipped("C-1", {"order_id": "A-3", "carrier": "dhl"}),
                shipped("C-1", {"order_id": "A-4"}, dataschema="urn:crm:schema:order.shipped:v9"),
                shipped("C-1", {"order_id": "A-5"}, dataschema="urn:crm:schema:order.completed:v1"),
            ],
        )
    ).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted", "rejected", "rejected"]
    assert "'carrier' is a required property" in results[1]["reason"]
    assert "known: urn:crm:schema:order.shipped:v1, urn:crm:schema:order.shipped:v2" in results[3]["reason"]
    versions = [e["data"]["schema_version"] for e in await outbox_events(engine, "custom_event.recorded")]
    assert versions == [1, 2]


def _deep(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(
    ("name", "schema", "status", "says"),
    [
        ("order.completed", SHIPPED_V1, 409, "fixed event type"),
        ("order.shipped", _deep(40), 422, "32"),  # the request body limit or the schema check
        ("order.shipped", {"type": "object", "description": "x" * 70_000}, 422, "byte limit"),
        ("order.shipped", {"type": "object", "properties": {"a": {"type": 12}}}, 422, "not a valid JSON Schema"),
        ("order.shipped", {"type": "object", "properties": {"a": {"pattern": "(unclosed"}}}, 422, "not a valid"),
        (
            "order.shipped",
            {"type": "object", "properties": {"a": {"$ref": "https://evil.example/s.json"}}},
            422,
            "only references into this schema",
        ),
        (
            "order.shipped",
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
            422,
            "only references into this schema",
        ),
        ("order.shipped", {"type": "array"}, 422, "data is an object"),
        ("order.shipped", {"type": "object", "$schema": "http://json-schema.org/draft-04/schema#"}, 422, "2020-12"),
        ("Order Shipped", SHIPPED_V1, 422, "name"),
        ("order.shipped\u0000", SHIPPED_V1, 422, "name"),
    ],
)
async def test_hostile_or_invalid_schemas_are_refused_with_4xx(client, name, schema, status, says):
    resp = await client.post("/v1/event-types", json={"name": name, "schema": schema})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert says in resp.text
    assert (await client.get("/v1/event-types")).json()["items"] == []


async def test_erasure_removes_custom_event_payloads_from_the_timeline_and_the_outbox(client, engine):
    await register(client, "order.shipped", SHIPPED_V1)
    await post(
        client,
        [
            event("customer.identified", "C-9", {"identifiers": {"email": "eve@example.com"}}),
            shipped("C-9", {"order_id": "eve@example.com", "contact": "eve@example.com"}),
        ],
    )
    cid = await customer_of(engine, "C-9")
    assert (await client.post(f"/v1/customers/{cid}/erasure")).status_code == 200
    timeline = (await client.get(f"/v1/customers/{cid}/timeline", params={"type": "order.shipped"})).json()
    assert [e["data"] for e in timeline["items"]] == [{}]
    [published] = await outbox_events(engine, "custom_event.recorded")
    assert "data" not in published["data"] and "eve@example.com" not in str(published)
