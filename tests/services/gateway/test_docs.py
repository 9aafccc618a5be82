"""The merged OpenAPI document (built even when a service is down) and the generated AsyncAPI document."""

import asyncio

import jsonschema_rs

from shared.contracts import partner
from shared.contracts.envelope import Envelope
from shared.contracts.lifecycle import LIFECYCLE_EVENT_TYPES
from shared.contracts.partner import PARTNER_EVENT_TYPES
from tests.services.gateway.conftest import gateway_stack
from tests.support import wait_until


async def test_gateway_starts_with_a_service_down_and_fills_the_gap_later(database_url: str) -> None:
    async with gateway_stack(database_url, services=("interaction", "segmentation", "lifecycle"), openapi_refresh_s=0.5) as stack:
        async with stack.client(key=None) as client:
            doc: dict = {}

            async def only_clv_missing() -> bool:
                # On a loaded machine a running service may also miss the first build's 3 s fetch (then filled in).
                nonlocal doc
                doc = (await client.get("/openapi.json")).json()
                return doc["info"].get("x-missing-services") == ["clv"]

            await wait_until(only_clv_missing, message="a document missing only the stopped service")
            assert "/v1/events" in doc["paths"] and "/v1/customers/{customer_id}/lifecycle" in doc["paths"]
            assert "/v1/customers/{customer_id}/value" not in doc["paths"]
            # Operation ids are unique, security is declared, every problem is problem+json.
            ops = [op for item in doc["paths"].values() for m, op in item.items() if isinstance(op, dict) and "responses" in op]
            ids = [op["operationId"] for op in ops]
            assert len(ids) == len(set(ids))
            assert doc["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
            for op in ops:
                for status, response in op["responses"].items():
                    if status.startswith("4") or status.startswith("5"):
                        assert "application/problem+json" in response.get("content", {}), (op["operationId"], status)
            html = await client.get("/docs")
            assert html.status_code == 200 and "/openapi.json" in html.text


def test_component_name_collisions_are_prefixed() -> None:
    from gateway.docs.openapi import merge

    gateway_doc = {
        "openapi": "3.1.0",
        "info": {"title": "gw"},
        "paths": {},
        "components": {"schemas": {"Thing": {"type": "string"}}},
    }
    svc = {
        "paths": {
            "/v1/value/things": {
                "get": {
                    "operationId": "things",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                        }
                    },
                }
            }
        },
        "components": {"schemas": {"Thing": {"type": "integer"}, "Other": {"type": "boolean"}}},
    }
    gateway_doc["paths"]["/v1/customers/{customer_id}"] = {"get": {"operationId": "view", "responses": {}}}
    interaction = {
        "paths": {
            "/v1/value/not-mine": {"get": {}},
            "/v1/customers/{id}": {
                "get": {"operationId": "profile", "responses": {}},
                "delete": {
                    "operationId": "erase",
                    "responses": {},
                    "parameters": [{"name": "id", "in": "path", "required": True}],
                },
            },
        }
    }
    merged = merge(gateway_doc, {"clv": svc, "interaction": interaction}, bearer=False)
    assert merged["components"]["schemas"]["Thing"] == {"type": "string"}
    assert merged["components"]["schemas"]["clv.Thing"] == {"type": "integer"}
    op = merged["paths"]["/v1/value/things"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/clv.Thing"
    assert op["operationId"] == "clv__things"
    assert "/v1/customers/{id}" not in merged["paths"], "one spelling per templated path"
    view = merged["paths"]["/v1/customers/{customer_id}"]
    assert view["get"]["operationId"] == "view", "the gateway's composed view wins"
    assert view["delete"]["operationId"] == "interaction__erase"
    assert view["delete"]["parameters"][0]["name"] == "customer_id"
    assert "/v1/value/not-mine" not in merged["paths"] or "get" not in merged["paths"]["/v1/value/not-mine"]


async def test_asyncapi_is_generated_from_the_contracts(database_url: str) -> None:
    async with gateway_stack(database_url, services=()) as stack:
        async with stack.client(key=None) as client:
            doc = (await client.get("/asyncapi")).json()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "partner.events",
        "interaction.events",
        "segmentation.events",
        "clv.events",
        "lifecycle.events",
        "partner.events.{partner}",
        "partner.events.{partner}.dlq",
    }
    # Partners: an authenticated server (SCRAM) for their own topic and their DLQ; the rest is internal.
    assert doc["components"]["securitySchemes"]["partnerScram"]["type"] == "scramSha512"
    assert doc["servers"]["kafka-partners"]["security"] == [{"$ref": "#/components/securitySchemes/partnerScram"}]
    for channel in doc["channels"].values():
        partner_side = channel["address"].startswith("partner.events.{partner}")
        assert channel["servers"] == [{"$ref": "#/servers/" + ("kafka-partners" if partner_side else "kafka")}]
    types = {
        m["payload"]["allOf"][1]["properties"]["type"]["const"]
        for m in doc["components"]["messages"].values()
        if "allOf" in m["payload"]
    }
    assert set(PARTNER_EVENT_TYPES) <= types and set(LIFECYCLE_EVENT_TYPES) <= types
    # Every $ref resolves, and a real event validates against its message's payload schema.
    msg = doc["components"]["messages"]["partner.order.completed"]
    # A self-contained schema: the message's payload with the document's components beside it.
    validator = jsonschema_rs.Draft202012Validator({"components": doc["components"], "allOf": [msg["payload"]]})
    order = Envelope.wrap(partner.OrderCompleted(order_id="A-1", amount="10.00", currency="EUR"), source="shop-eu", subject="C-1")
    validator.validate(order.model_dump(mode="json", exclude_none=True))
    bad = order.model_dump(mode="json", exclude_none=True) | {"data": {"order_id": "A-1"}}
    assert not validator.is_valid(bad)
    wrong_type = order.model_dump(mode="json", exclude_none=True) | {"type": "order.cancelled"}
    assert not validator.is_valid(wrong_type)
    assert msg["payload"]["allOf"][1]["properties"]["type"]["const"] == "order.completed"
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].split("/")[-1]
        for ref in op["messages"]:
            assert ref["$ref"].split("/")[-1] in doc["channels"][channel]["messages"]
    await asyncio.sleep(0)
