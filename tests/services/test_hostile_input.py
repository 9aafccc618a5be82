"""Class 6 of the security review: hostile values in request bodies are a 4xx problem naming the field, never a 500.

Lone surrogates, NUL, numbers beyond any column, instants whose UTC conversion leaves the datetime range and
JSON nested deeper than the encoders take: each service's write routes and the gateway's own, in process, on
a real Postgres. Bodies are sent as raw JSON text: a lone surrogate cannot be encoded by a JSON client.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from shared.db import make_engine
from shared.messaging.inprocess import InProcessTransport
from shared.problems import install_problem_handlers
from tests.services.conftest import serving

import clv.app
import gateway.app
import interaction.app
import lifecycle.app
import segmentation.app
from clv.settings import ClvSettings
from gateway.settings import GatewaySettings
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from segmentation.settings import SegmentationSettings

ADMIN_KEY = "hostile-input-admin-key-0123456789abcdef"
APPS = {
    "interaction": (InteractionSettings, interaction.app.create_app),
    "segmentation": (SegmentationSettings, segmentation.app.create_app),
    "clv": (ClvSettings, clv.app.create_app),
    "lifecycle": (LifecycleSettings, lifecycle.app.create_app),
    "gateway": (GatewaySettings, gateway.app.create_app),
}
DEEP = "[" * 254 + "]" * 254


@contextlib.asynccontextmanager
async def service(name: str, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings_cls, create_app = APPS[name]
    extra = {"bootstrap_admin_key": ADMIN_KEY} if name == "gateway" else {}
    settings = settings_cls(database_url=database_url, transport="inprocess", run_workers=False, **extra)
    async with serving(create_app(settings, InProcessTransport())) as client:
        client.headers["X-API-Key"] = ADMIN_KEY
        yield client


def rule(value: str) -> str:
    return '{"field": "clv", "op": "gt", "value": %s}' % value


# (service, method, path, raw JSON body, a location the problem must name)
CASES = [
    ("segmentation", "POST", "/v1/segments/preview", '{"rule": {"field": "stage", "op": "eq", "value": "\\ud800"}}', "value"),
    ("segmentation", "POST", "/v1/segments/preview", '{"rule": %s}' % rule('"1e-999999"'), "value"),
    ("segmentation", "POST", "/v1/segments", '{"key": "k1", "name": "n", "rule": %s}' % rule('"1e-999999"'), "value"),
    ("segmentation", "POST", "/v1/segments", '{"key": "k2", "name": "\\ud800", "rule": %s}' % rule("1"), "name"),
    ("segmentation", "POST", "/v1/segments/preview", '{"rule": %s}' % rule("1e999999"), "value"),
    ("segmentation", "POST", "/v1/segments/preview", '{"rule": {"all": %s}}' % DEEP, "rule"),
    # Custom event conditions: the type's name and the window are checked before they reach SQL.
    (
        "segmentation",
        "POST",
        "/v1/segments/preview",
        '{"rule": {"field": "event_count", "event_type": "order.\\ud800", "op": "gte", "value": 1}}',
        "event_type",
    ),
    (
        "segmentation",
        "POST",
        "/v1/segments/preview",
        '{"rule": {"field": "event_count", "event_type": "order.shipped", "within_days": 1e999999, "op": "gte", "value": 1}}',
        "within_days",
    ),
    (
        "segmentation",
        "POST",
        "/v1/segments/preview",
        '{"rule": {"field": "event_count", "event_type": "order.shipped", "within_days": 99999999999999999999999, '
        '"op": "gte", "value": 1}}',
        "within_days",
    ),
    (
        "segmentation",
        "POST",
        "/v1/segments/preview",
        '{"rule": {"field": "event_last_at", "event_type": "order.shipped", "op": "after", "value": "9999-12-31T23:59:59-14:00"}}',
        "value",
    ),
    (
        "clv",
        "POST",
        "/v1/propositions",
        '{"name": "a\\u0000", "kind": "offer", "currency": "EUR", "cost": "1", "expected_uplift": 0.1}',
        "name",
    ),
    (
        "clv",
        "POST",
        "/v1/propositions",
        '{"name": "a", "description": "\\u0000", "kind": "offer", "currency": "EUR", "cost": "1", "expected_uplift": 0.1}',
        "description",
    ),
    (
        "clv",
        "POST",
        "/v1/propositions",
        '{"name": "a", "target_segments": ["x\\u0000"], "kind": "offer", "currency": "EUR", "cost": "1", "expected_uplift": 0.1}',
        "target_segments",
    ),
    (
        "clv",
        "POST",
        "/v1/propositions",
        '{"name": "a", "kind": "offer", "currency": "EUR", "cost": 1e999999, "expected_uplift": 0.1}',
        "cost",
    ),
    ("clv", "POST", "/v1/value/models/fits", '{"currency": "EUR", "as_of": "9999-12-31T23:59:59-14:00"}', "as_of"),
    (
        "lifecycle",
        "POST",
        "/v1/deals",
        '{"customer_id": "%s", "pipeline": "sales", "expected_close": "9999-12-31T23:59:59-14:00"}' % uuid.uuid4(),
        "expected_close",
    ),
    (
        "lifecycle",
        "POST",
        "/v1/deals",
        '{"customer_id": "%s", "pipeline": "sales", "expected_close": "0001-01-01T00:00:00+14:00"}' % uuid.uuid4(),
        "expected_close",
    ),
    ("lifecycle", "POST", "/v1/deals", '{"customer_id": "%s", "pipeline": "sales", "title": "\\udfff"}' % uuid.uuid4(), "title"),
    ("gateway", "POST", "/v1/api-keys", '{"name": "k", "role": "analyst", "expires_at": "9999-12-31T23:59:59Z"}', "expires_at"),
    (
        "gateway",
        "POST",
        "/v1/api-keys",
        '{"name": "k", "role": "analyst", "expires_at": "9999-12-31T23:59:59-14:00"}',
        "expires_at",
    ),
    ("interaction", "POST", "/v1/partners", '{"id": "p1", "name": "\\ud800"}', "name"),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "field"), CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
async def test_hostile_value_is_a_problem_naming_the_field(database_url, name, method, path, body, field):
    async with service(name, database_url) as client:
        resp = await client.request(method, path, content=body.encode(), headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.text, resp.text


def raw_event(subject: str, data: str, **attrs: str) -> str:
    """A partner event as JSON text, so it can carry what a JSON encoder would refuse."""
    fields = {
        "specversion": '"1.0"',
        "id": f'"{uuid.uuid4()}"',
        "source": '"shop-eu"',
        "type": '"customer.identified"',
        "subject": f'"{subject}"',
        "time": '"2026-11-01T10:00:00Z"',
        "data": data,
    } | attrs
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def valid_order(subject: str, order_id: str) -> str:
    return raw_event(subject, '{"order_id": "%s", "amount": "10.00", "currency": "EUR"}' % order_id, type='"order.completed"')


# (name, the event, what its reason must mention)
HOSTILE_EVENTS = [
    ("data nested 254 levels", raw_event("H-1", '{"note": %s}' % ("[" * 252 + "]" * 252)), "data.note"),
    ("lone surrogate in an attribute", raw_event("H-1", '{"attributes": {"note": "\\ud800"}}'), "surrogate"),
    ("lone surrogate in the subject", raw_event("H-\\udfff", "{}"), "subject"),
    ("lone surrogate in the id", raw_event("H-1", "{}", id='"\\ud800"'), "id"),
    ("number beyond a double", raw_event("H-1", '{"attributes": {"n": 1e999999}}'), "data.attributes.n"),
    ("integer beyond 64 bits", raw_event("H-1", '{"attributes": {"n": %d}}' % 2**70), "data.attributes.n"),
    (
        "deal closing in year 10000 UTC",
        raw_event(
            "H-1", '{"deal_id": "D", "stage": "won", "expected_close": "9999-12-31T23:59:59-14:00"}', type='"deal.updated"'
        ),
        "expected_close",
    ),
    ("NUL in an attribute key", raw_event("H-1", '{"attributes": {"a\\u0000": 1}}'), "NUL"),
]


async def test_hostile_events_are_rejected_one_by_one_and_the_valid_ones_stored(database_url):
    batch = "[" + ", ".join([valid_order("V-1", "V-O-1"), *(e for _, e, _ in HOSTILE_EVENTS), valid_order("V-2", "V-O-2")]) + "]"
    async with service("interaction", database_url) as client:
        resp = await client.post("/v1/events", content=batch.encode(), headers={"content-type": "application/json"})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
        results = resp.json()["results"]
        assert [r["status"] for r in (results[0], results[-1])] == ["accepted", "accepted"]
        for (name, _, reason), result in zip(HOSTILE_EVENTS, results[1:-1], strict=True):
            assert result["status"] == "rejected", name
            assert reason in result["reason"], f"{name}: {result['reason']}"
        for subject in ("V-1", "V-2"):
            found = await client.get("/v1/customers", params={"source": "shop-eu", "external_id": subject})
            assert len(found.json()["items"]) == 1, found.text
        nothing = await client.get("/v1/customers", params={"source": "shop-eu", "external_id": "H-1"})
        assert nothing.json()["items"] == [], "nothing of a rejected event is stored"


@pytest.mark.parametrize("body", [b'[{"a": NaN}]', b'[{"a": Infinity}]', b"[" * 100_000 + b"]" * 100_000])
async def test_a_batch_that_is_not_json_is_400(database_url, body):
    async with service("interaction", database_url) as client:
        resp = await client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["detail"], resp.text


async def test_a_value_the_database_refuses_is_a_422_but_our_own_data_bug_stays_a_500(database_url):
    """The backstop behind the checks: a Postgres data exception a request value causes is the client's."""
    engine = make_engine(database_url)
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/cast")
    async def cast(value: str) -> dict:
        async with engine.connect() as conn:
            return {"n": (await conn.execute(sa.text("select cast(:v as int)"), {"v": value})).scalar()}

    @app.post("/when")
    async def when(year: int) -> dict:
        at = datetime(year, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=14)))
        async with engine.connect() as conn:
            return {
                "at": (await conn.execute(sa.text("select cast(:t as timestamptz)"), {"t": at}))
                .scalar()
                .astimezone(UTC)
                .isoformat()
            }

    @app.post("/divide")
    async def divide() -> dict:
        async with engine.connect() as conn:
            return {"n": (await conn.execute(sa.text("select 1 / 0"))).scalar()}

    try:
        async with serving(app) as client:
            refused = await client.post("/cast", params={"value": "ten"})
            overflow = await client.post("/when", params={"year": 9999})
            ours = await client.post("/divide")
    finally:
        await engine.dispose()
    for resp in (refused, overflow):
        assert resp.status_code == 422, resp.text
        assert resp.json()["type"].endswith("/unstorable-value")
    assert ours.status_code == 500
