"""The AsyncAPI document as a partner uses it: valid for the reference parser, every rule the ingestion enforces
in its schemas, and every message's example valid against its schema and accepted by the ingestion."""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import jsonschema_rs
import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.partner import PARTNER_EVENT_TYPES

from gateway.docs import asyncapi
from interaction.app import create_app
from interaction.settings import InteractionSettings
from tests.services.conftest import serving

CLIENTS = Path(__file__).resolve().parents[3] / "clients"


@pytest.fixture(scope="module")
def doc() -> dict:
    return asyncapi.build()


def validator(doc: dict, schema: dict) -> jsonschema_rs.Draft202012Validator:
    # A self-contained schema: the part with the document's components beside it, so every $ref resolves.
    return jsonschema_rs.Draft202012Validator({"components": doc["components"], "allOf": [schema]})


def test_the_asyncapi_parser_finds_no_error_and_no_warning(doc: dict, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the AsyncAPI parser (@asyncapi/parser) runs on Node.js")
    assert (CLIENTS / "node_modules" / "@asyncapi" / "parser").is_dir(), \
        "run `npm ci --prefix clients` (./crm test does it when npm is present)"
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(doc))
    run = subprocess.run(["node", str(CLIENTS / "validate-asyncapi.mjs"), str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    # The parser's own verdict, not just our exit code: nothing above info level.
    for line in run.stdout.splitlines():
        assert json.loads(line)["severity"] in ("info", "hint"), line


def test_every_message_has_a_unique_name_and_an_example_valid_against_its_schema(doc: dict) -> None:
    messages = doc["components"]["messages"]
    names = [m["name"] for m in messages.values()]
    assert len(names) == len(set(names)), "message names are unique across channels"
    for msg_id, message in messages.items():
        assert message.get("examples") or msg_id == "partner.rejected", msg_id
        check = validator(doc, message["payload"])
        for example in message.get("examples", []):
            errors = [e.message for e in check.iter_errors(example["payload"])]
            assert not errors, (msg_id, errors)


def test_the_schemas_carry_the_ingestion_rules(doc: dict) -> None:
    order = validator(doc, doc["components"]["messages"]["partner.order.completed"]["payload"])
    example = doc["components"]["messages"]["partner.order.completed"]["examples"][0]["payload"]

    def data(**changes: object) -> dict:
        return example | {"data": example["data"] | changes}

    assert order.is_valid(example)
    assert not order.is_valid({k: v for k, v in example.items() if k != "subject"}), "subject is required"
    assert not order.is_valid(example | {"subject": "  "}), "and not blank"
    assert not order.is_valid(data(currency="XQZ")), "ISO 4217 only"
    assert not order.is_valid(data(amount="-1.00")) and not order.is_valid(data(amount="1.23456"))
    assert not order.is_valid(data(order_id="A\u0000")), "no NUL"
    assert not order.is_valid(example | {"dataschema": "urn:crm:schema:order.completed:v9"})
    identified = validator(doc, doc["components"]["messages"]["partner.customer.identified"]["payload"])
    person = doc["components"]["messages"]["partner.customer.identified"]["examples"][0]["payload"]

    def ids(**changes: object) -> dict:
        return person | {"data": person["data"] | {"identifiers": person["data"]["identifiers"] | changes}}

    assert identified.is_valid(ids(phone="+14155550123"))
    assert not identified.is_valid(ids(phone="02079460958")), "E.164: with the country code"
    assert not identified.is_valid(person | {"data": person["data"] | {"attributes": {"a": {"nested": 1}}}})
    assert not identified.is_valid(person | {"data": person["data"] | {"attributes": {"a": [1]}}})
    time = doc["components"]["schemas"]["cloudevents.CloudEvent"]["properties"]["time"]
    assert "1990-01-01" in time["description"] and "now + 1 day" in time["description"]
    assert "256 KiB" in doc["components"]["schemas"]["cloudevents.CloudEvent"]["description"]
    # The binary binding names a header for every envelope attribute but `data`, which is the value.
    headers = doc["components"]["schemas"]["cloudevents.KafkaBinaryHeaders"]["properties"]
    assert {f"ce_{name}" for name in Envelope.model_fields if name != "data"} | {"content-type"} == set(headers)
    assert doc["servers"]["kafka-partners"]["variables"]["topicPrefix"]["default"] == ""
    assert "partner.events.{partner}.dlq" in {c["address"] for c in doc["channels"].values()}


async def test_every_partner_example_is_accepted_by_http_ingestion(doc: dict, database_url: str) -> None:
    examples = [m["examples"][0]["payload"] for m in doc["components"]["messages"].values()
                if m["name"].startswith("partner.") and m.get("examples")]
    assert {e["type"] for e in examples} == set(PARTNER_EVENT_TYPES)
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    async with serving(create_app(settings)) as client:
        # The erasure last: it would erase the customer the others are about.
        batch = sorted(examples, key=lambda e: e["type"] == "erasure.requested")
        resp = await client.post("/v1/events", json=batch)
        assert resp.status_code == 200, resp.text
        assert resp.json()["accepted"] == len(examples)
        # What the examples promise is refused is refused, with the reason.
        order = next(e for e in examples if e["type"] == "order.completed")
        bad = [order | {"id": str(uuid.uuid4()), "data": order["data"] | {"currency": "XQZ"}},
               order | {"id": str(uuid.uuid4()), "dataschema": "urn:crm:schema:order.completed:v9"}]
        resp = await client.post("/v1/events", json=bad)
        assert resp.status_code == 422, resp.text
        reasons = [r["reason"] for r in resp.json()["results"]]
        assert "ISO 4217" in reasons[0]
        assert "known: urn:crm:schema:order.completed:v1" in reasons[1]
