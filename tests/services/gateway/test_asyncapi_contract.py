"""The AsyncAPI document as a partner uses it (issue 16): read from the gateway's `/asyncapi` and nothing else.

- the reference parser (@asyncapi/parser, tools/asyncapi-check) finds no error and no warning in it;
- every message has a unique name and an example valid against its own schema, and every partner example is
  accepted through HTTP;
- the partner test: events of every partner type generated from the schemas (hypothesis-jsonschema) are all
  accepted, and events that break one constraint of the schemas at a time are each rejected, the reason naming
  the field.
"""

import copy
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.services.gateway.conftest import Stack, create_key, gateway_stack
from tests.services.gateway.jsonschema_strategy import from_schema

TOOL = Path(__file__).resolve().parents[3] / "tools" / "asyncapi-check"
PARTNER = "shop-eu"
REF = "#/components/schemas/"
GENERATED_PER_TYPE = 25


async def served(stack: Stack) -> dict:
    async with stack.client(key=None) as client:
        resp = await client.get("/asyncapi")
    assert resp.status_code == 200, resp.text
    return resp.json()


def partner_messages(doc: dict) -> dict[str, dict]:
    """The messages a partner sends: those of its own topic's channel."""
    refs = doc["channels"]["partner-events-own"]["messages"].values()
    return {ref["$ref"].split("/")[-1]: doc["components"]["messages"][ref["$ref"].split("/")[-1]] for ref in refs}


def inline(node: Any, doc: dict) -> Any:
    """The schema with every `$ref` replaced by its target (the document has no recursive schema)."""
    if isinstance(node, list):
        return [inline(n, doc) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = inline(doc["components"]["schemas"][node["$ref"].removeprefix(REF)], doc)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {"allOf": [target, inline(rest, doc)]} if rest else target
    return {k: (v if k in ("examples", "const", "enum", "default") else inline(v, doc)) for k, v in node.items()}


def validator(doc: dict, schema: dict) -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(inline(schema, doc), validate_formats=True)


# A custom event type: in the document as soon as it is registered, and a partner type like the fixed ones.
SHIPPED = {
    "type": "object",
    "required": ["order_id", "carrier"],
    "properties": {
        "order_id": {"type": "string", "minLength": 1, "maxLength": 100},
        "carrier": {"type": "string", "maxLength": 50},
        "shipped_at": {"type": "string", "format": "date-time"},
        "parcels": {"type": "integer", "minimum": 1},
    },
}


@pytest.fixture
async def partner_stack(database_url: str):
    async with gateway_stack(database_url, services=("interaction",)) as stack:
        key = await create_key(stack, "partner", partner=PARTNER)
        async with stack.client() as admin:
            resp = await admin.post("/v1/event-types", json={"name": "order.shipped", "schema": SHIPPED})
            assert resp.status_code == 201, resp.text
        yield stack, key


async def post(stack: Stack, key: str, events: list[dict]) -> list[dict]:
    async with stack.client(key=key) as client:
        resp = await client.post("/v1/events", json=events)
    assert resp.status_code in (200, 422), resp.text
    return resp.json()["results"]


# -- the parser ---------------------------------------------------------------------------------------------------


def _node_tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


async def test_the_asyncapi_parser_finds_no_error_and_no_warning(partner_stack, tmp_path: Path) -> None:
    tools = _node_tools()
    if tools is None:
        # CI must run the parser: a machine without Node fails there instead of passing silently.
        if os.environ.get("CI"):
            pytest.fail("node and npm are required to validate the AsyncAPI document (@asyncapi/parser)")
        pytest.skip("node/npm not installed: the AsyncAPI parser runs on Node.js")
    node, npm = tools
    if not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        # Pinned by package-lock.json; --ignore-scripts: the parser needs no install script.
        run = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=TOOL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
    doc = await served(partner_stack[0])  # with a registered custom type
    assert "partner.custom.order.shipped.v1" in doc["components"]["messages"]
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(doc))
    run = subprocess.run(
        [node, str(TOOL / "validate-asyncapi.mjs"), str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The parser's own verdict, not just the script's exit code: nothing above info level.
    for line in run.stdout.splitlines():
        assert json.loads(line)["severity"] in ("info", "hint"), line


# -- messages and examples ----------------------------------------------------------------------------------------


async def test_every_message_is_named_once_and_its_example_is_valid_and_accepted(partner_stack) -> None:
    stack, key = partner_stack
    doc = await served(stack)
    messages = doc["components"]["messages"]
    names = [m["name"] for m in messages.values()]
    assert len(names) == len(set(names)), "message names are unique across channels"
    for msg_id, message in messages.items():
        if msg_id == "partner.rejected":  # the partner's own bytes, as it sent them
            continue
        assert message.get("examples"), msg_id
        check = validator(doc, message["payload"])
        for example in message["examples"]:
            errors = [e.message for e in check.iter_errors(example["payload"])]
            assert not errors, (msg_id, errors)
    examples = [m["examples"][0]["payload"] for m in partner_messages(doc).values()]
    assert len(examples) == 12  # the 11 fixed types and the registered one
    # The erasure last: it erases the customer the others are about.
    examples.sort(key=lambda e: e["type"] == "erasure.requested")
    results = await post(stack, key, examples)
    assert [r["status"] for r in results] == ["accepted"] * len(examples), results


async def test_the_schemas_state_the_ingestion_rules(partner_stack) -> None:
    stack, key = partner_stack
    doc = await served(stack)
    messages = doc["components"]["messages"]
    order = validator(doc, messages["partner.order.completed"]["payload"])
    example = messages["partner.order.completed"]["examples"][0]["payload"]

    def data(**changes: object) -> dict:
        return example | {"id": str(uuid.uuid4()), "data": example["data"] | changes}

    assert order.is_valid(example)
    assert not order.is_valid({k: v for k, v in example.items() if k != "subject"}), "subject is required"
    assert not order.is_valid(example | {"subject": " \t\u3000"}), "and not blank"
    assert not order.is_valid(data(currency="XQZ")), "ISO 4217 only"
    assert not order.is_valid(data(amount="-1.00")) and not order.is_valid(data(amount="1.23456"))
    assert not order.is_valid(data(order_id="A\u0000")), "no NUL"
    assert not order.is_valid(example | {"dataschema": "urn:crm:schema:order.completed:v9"})
    person_msg = messages["partner.customer.identified"]
    identified = validator(doc, person_msg["payload"])
    person = person_msg["examples"][0]["payload"]

    def ids(**changes: object) -> dict:
        return person | {"data": person["data"] | {"identifiers": person["data"]["identifiers"] | changes}}

    assert identified.is_valid(ids(phone="+14155550123"))
    assert not identified.is_valid(ids(phone="02079460958")), "E.164: with the country code"
    assert not identified.is_valid(ids(email="not-an-email"))
    assert not identified.is_valid(person | {"data": person["data"] | {"attributes": {"a": {"nested": 1}}}})
    assert not identified.is_valid(person | {"data": person["data"] | {"attributes": {"a": [1]}}})
    envelope = doc["components"]["schemas"]["cloudevents.CloudEvent"]
    assert "1990-01-01" in envelope["properties"]["time"]["description"]
    assert "now + 1 day" in envelope["properties"]["time"]["description"]
    assert "256 KiB" in envelope["description"] and "1,000 events" in envelope["description"]
    # The binary binding names a header for every envelope attribute but `data`, which is the value.
    headers = doc["components"]["schemas"]["cloudevents.KafkaBinaryHeaders"]["properties"]
    assert {f"ce_{name}" for name in envelope["properties"] if name != "data"} | {"content-type"} == set(headers)
    assert doc["servers"]["kafka-partners"]["variables"]["topicPrefix"]["default"] == ""
    assert "partner.events.{partner}.dlq" in {c["address"] for c in doc["channels"].values()}
    # What the schemas say is refused is refused by the ingestion, with the reason.
    results = await post(
        stack,
        key,
        [
            data(currency="XQZ"),
            data() | {"dataschema": "urn:crm:schema:order.completed:v9"},
            data() | {"time": "1989-12-31T23:59:59Z"},
        ],
    )
    assert [r["status"] for r in results] == ["rejected"] * 3, results
    assert "currency" in results[0]["reason"] and "ISO 4217" in results[0]["reason"]
    assert "known: urn:crm:schema:order.completed:v1" in results[1]["reason"]
    assert results[2]["reason"].startswith("time:")


# -- the partner test ---------------------------------------------------------------------------------------------

# The rules the schemas can only describe (a JSON Schema cannot compare with now or with another field), applied
# as the document states them: every date-time inside the accepted window, `source` and the keys of
# `identifiers.external_ids` the partner's own id.
OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


def in_window() -> st.SearchStrategy[str]:
    latest = datetime.now() - timedelta(days=1)  # naive: a local time, made aware by the offset drawn with it
    return st.datetimes(min_value=datetime(1990, 1, 2), max_value=latest, timezones=st.sampled_from(OFFSETS)).map(
        lambda d: d.isoformat()
    )


FORMATS = {"date-time": in_window(), "email": st.emails(), "uuid": st.uuids().map(str), "date": st.dates().map(str)}


def as_partner(event: dict) -> dict:
    event = copy.deepcopy(event) | {"source": PARTNER}
    ids = event.get("data", {}).get("identifiers")
    if isinstance(ids, dict) and ids.get("external_ids"):
        ids["external_ids"] = {PARTNER: next(iter(ids["external_ids"].values()))}
    return event


def generate(schema: dict, count: int) -> list[dict]:
    """`count` instances of the schema, drawn by hypothesis (generation only: nothing to shrink here)."""
    drawn: list[dict] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(schema, FORMATS))
    def draw(event: dict) -> None:
        drawn.append(event)

    draw()
    return drawn


async def test_partner_events_generated_from_the_document_are_all_accepted(partner_stack) -> None:
    stack, key = partner_stack
    doc = await served(stack)
    messages = partner_messages(doc)
    assert len(messages) == 12 and "partner.custom.order.shipped.v1" in messages, list(messages)
    seen_types = set()
    for msg_id, message in messages.items():
        check = validator(doc, message["payload"])
        events = [as_partner(e) for e in generate(inline(message["payload"], doc), GENERATED_PER_TYPE)]
        assert events, msg_id
        for event in events:
            assert check.is_valid(event), (msg_id, event)
        # One event a request: an erasure in a batch would erase the subject of the events after it.
        for event in events:
            results = await post(stack, key, [event])
            assert results[0]["status"] != "rejected", (msg_id, results[0]["reason"], event)
            seen_types.add(event["type"])
    assert len(seen_types) == 12


# Values that break one rule; the first the schema refuses is used.
BROKEN_STRINGS = ["-1.00", "1.23456", "XQZ", "not-a-time", "not-an-email", "12345", "2.0", " ", ""]
WRONG_TYPE = {"string": {"x": 1}, "integer": "x", "number": "x", "boolean": "x", "object": "x", "array": "x"}


def _branch(schema: dict, value: Any) -> dict:
    """The branch of an `anyOf` the value takes (the non-null one of an optional field), allOf parts merged."""
    if "allOf" in schema:
        merged: dict = {}
        for part in schema["allOf"]:
            part = _branch(part, value)
            props = {**merged.get("properties", {}), **part.get("properties", {})}
            required = [*merged.get("required", []), *part.get("required", [])]
            merged = {**merged, **part, "properties": props, "required": required}
        return merged
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            if option.get("type") != "null" and jsonschema_rs.is_valid(option, value):
                return _branch(option, value)
        return next(o for o in schema["anyOf"] if o.get("type") != "null")
    return schema


def mutants(schema: dict, value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, Any]]:
    """For each constraint of the schema on the value (and inside it), (path, rule, a value breaking it alone)."""
    node = _branch(schema, value)
    kind = node.get("type")
    if kind in WRONG_TYPE and path:
        yield path, "type", WRONG_TYPE[kind]
    if isinstance(value, dict):
        for name in node.get("required", []):
            yield path + (name,), "required", _DELETE
        for name, sub in node.get("properties", {}).items():
            if name in value:
                yield from mutants(sub, value[name], path + (name,))
        extra = node.get("additionalProperties")
        listed = node.get("properties", {})
        for name in [k for k in value if k not in listed][:1]:
            if isinstance(extra, dict):
                yield from mutants(extra, value[name], path + (name,))
        names = node.get("propertyNames", {})
        if "pattern" in names:
            yield path, "propertyNames", {**value, "k\u0000": next(iter(value.values()), 1)}
        if "maxLength" in names and value:
            yield path, "propertyNames", {**value, "k" * (names["maxLength"] + 1): next(iter(value.values()))}
        if "maxProperties" in node and value:
            first = next(iter(value.values()))
            yield path, "maxProperties", {**value, **{f"k{i}": first for i in range(node["maxProperties"] + 1)}}
        if node.get("minProperties"):
            yield path, "minProperties", {}
    elif isinstance(value, list):
        if "maxItems" in node and value:
            yield path, "maxItems", value * (node["maxItems"] + 1)
        if value and isinstance(node.get("items"), dict):
            yield from mutants(node["items"], value[0], path + (0,))
    elif isinstance(value, str):
        if "enum" in node or "const" in node:
            allowed = node.get("enum") or [node.get("const")]
            yield path, "enum", next(c for c in ["XQZ", "other", "urn:crm:schema:x:v9"] if c not in allowed)
        if "maxLength" in node:
            yield path, "maxLength", "x" * (node["maxLength"] + 1)
        if node.get("minLength"):
            yield path, "minLength", ""
        if "pattern" in node:
            broken = [value + "\u0000"] if node["pattern"] == "^[^\\u0000]*$" else BROKEN_STRINGS
            for candidate in broken:
                if not jsonschema_rs.is_valid(node, candidate, validate_formats=True):
                    yield path, "pattern", candidate
                    break
        if "format" in node:
            yield path, "format", "not-a-" + node["format"]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # A bound at the 64-bit edge is broken by an integer beyond it (`x + 1` is `x` in a double).
        if "minimum" in node:
            low = node["minimum"]
            yield path, "minimum", int(low) * 10 if abs(low) >= 1e18 else low - 1
        if "maximum" in node:
            high = node["maximum"]
            yield path, "maximum", int(high) * 10 if abs(high) >= 1e18 else high + 1


_DELETE = object()


def _put(event: dict, path: tuple, value: Any) -> dict:
    event = copy.deepcopy(event)
    target = event
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


def field_of(path: tuple) -> str:
    """The name a reason must give: the innermost named field (an array index names its array)."""
    return next(str(step) for step in reversed(path) if isinstance(step, str))


def broken_events(doc: dict) -> list[tuple[str, tuple, str, dict]]:
    """(message, field path, rule, event) for every constraint of every partner message: its example with that
    one rule broken. `source` is left alone: the API key or the topic binds it (a 403 for the whole HTTP batch,
    a dead letter on Kafka, tested elsewhere)."""
    cases = []
    for msg_id, message in partner_messages(doc).items():
        schema = inline(message["payload"], doc)
        check = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        example = message["examples"][0]["payload"]
        for path, rule, broken in mutants(schema, example):
            if path[:1] == ("source",):
                continue
            event = _put(example | {"id": str(uuid.uuid4())}, path, broken) if path else broken
            assert not check.is_valid(event), (msg_id, path, rule, "the mutation should break the schema")
            cases.append((msg_id, path, rule, event))
    return cases


async def test_partner_events_breaking_one_constraint_are_each_rejected_naming_the_field(partner_stack) -> None:
    stack, key = partner_stack
    cases = broken_events(await served(stack))
    assert len({msg_id for msg_id, *_ in cases}) == 12
    assert len(cases) > 400, len(cases)
    results = []
    for start in range(0, len(cases), 200):
        results += await post(stack, key, [event for *_, event in cases[start : start + 200]])
    for (msg_id, path, rule, event), result in zip(cases, results, strict=True):
        where = ".".join(map(str, path))
        assert result["status"] == "rejected", (msg_id, where, rule, event)
        assert field_of(path) in result["reason"], (msg_id, where, rule, result["reason"])
