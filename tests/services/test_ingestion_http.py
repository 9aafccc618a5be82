"""`POST /v1/events` on a real Postgres: per-item results, bad input as problem+json, idempotency, durability."""

import uuid

import pytest
import sqlalchemy as sa

from shared.contracts.interaction import PurchaseRecorded
from shared.db import make_engine
from tests.services.conftest import serving
from tests.support import scalar

from interaction.app import create_app
from interaction.settings import InteractionSettings


def order(
    subject: str = "C-1",
    order_id: str | None = None,
    amount: str = "59.90",
    source: str = "shop-eu",
    time: str = "2026-11-01T10:00:00Z",
    **overrides,
) -> dict:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": "order.completed",
        "subject": subject,
        "time": time,
        "data": {"order_id": order_id or f"A-{uuid.uuid4().hex[:8]}", "amount": amount, "currency": "EUR", "channel": "web"},
    }
    event.update(overrides)
    return event


@pytest.fixture
async def client(database_url):
    settings = InteractionSettings(
        database_url=database_url, transport="inprocess", run_workers=False, ingest_max_events=50, ingest_max_bytes=64 * 1024
    )
    async with serving(create_app(settings)) as c:
        yield c


@pytest.fixture
async def engine(database_url):
    e = make_engine(database_url)
    yield e
    await e.dispose()


async def test_valid_batch_is_stored_and_publishes_purchase_and_customer_events(client, engine):
    resp = await client.post("/v1/events", json=[order("C-1"), order("C-1"), order("C-2")])
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 3
    assert await scalar(engine, "select count(*) from interaction.purchase") == 3
    assert await scalar(engine, "select count(*) from interaction.customer") == 2
    types = [r[0] for r in (await _outbox_types(engine))]
    assert sorted(types) == ["customer.created"] * 2 + ["purchase.recorded"] * 3


async def _outbox_types(engine):
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("select convert_from(payload, 'UTF8')::jsonb->>'type' from interaction.outbox order by id")
            )
        ).all()


async def test_resent_event_is_a_duplicate_and_changes_nothing(client, engine):
    event = order("C-9")
    first = await client.post("/v1/events", json=[event])
    again = await client.post("/v1/events", json=[event, event])
    assert first.json()["accepted"] == 1
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
    assert await scalar(engine, "select count(*) from interaction.purchase") == 1
    assert await scalar(engine, "select count(*) from interaction.outbox") == 2  # customer.created + purchase


async def test_same_order_under_a_new_event_id_is_stored_once(client, engine):
    await client.post("/v1/events", json=[order("C-3", order_id="A-77")])
    resp = await client.post("/v1/events", json=[order("C-3", order_id="A-77")])
    assert resp.json()["accepted"] == 1  # a new event, accepted …
    assert await scalar(engine, "select count(*) from interaction.purchase where order_id = 'A-77'") == 1  # … one order


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"specversion": "1.0", "source": "shop-eu", "type": "order.completed", "time": "2026-11-01T10:00:00Z"}, "id"),
        (order(type="order.teleported"), "unknown event type"),
        (order(subject=None), "subject"),
        (order(time="yesterday"), "time"),
        (order(data={"order_id": "A-1", "amount": "ten", "currency": "EUR"}), "amount"),
        (order(data={"order_id": "A-1", "amount": "1.00", "currency": "euro"}), "currency"),
        (order(data={"order_id": "A-1", "amount": "-5", "currency": "EUR"}), "amount"),
        ("not an object", "JSON object"),
    ],
)
async def test_bad_items_are_rejected_with_a_reason_and_valid_ones_still_stored(client, engine, bad, reason):
    good = order("C-5")
    resp = await client.post("/v1/events", json=[good, bad])
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 422 and body["type"].endswith("/events-rejected")
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    assert reason in body["results"][1]["reason"]
    assert await scalar(engine, "select count(*) from interaction.purchase") == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe\xfd", 400, "not valid JSON"),
        (b'{"events": []}', 400, "JSON array"),
        (b"[]", 400, "empty"),
        (b"[" + b",".join([b"{}"] * 51) + b"]", 413, "limit of 50"),
        (b"[" + b" " * (65 * 1024) + b"]", 413, "byte limit"),
    ],
)
async def test_malformed_batches_get_problem_json(client, body, status, detail):
    resp = await client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    assert detail in resp.json()["detail"]


async def test_profile_shows_identifiers_and_totals_per_currency(client, engine):
    await client.post("/v1/events", json=[order("C-7", amount="10.00"), order("C-7", amount="5.50")])
    customer_id = await scalar(engine, "select customer_id from interaction.customer_identifier where external_id='C-7'")
    resp = await client.get(f"/v1/customers/{customer_id}")
    assert resp.status_code == 200
    profile = resp.json()
    assert profile["identifiers"] == [{"kind": "source", "source": "shop-eu", "external_id": "C-7"}]
    assert profile["purchase_count"] == 2
    assert profile["purchase_totals"][0]["total_spend"] == "15.5000"
    missing = await client.get(f"/v1/customers/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    bad = await client.get("/v1/customers/not-a-uuid")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_health_and_metrics(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    metrics = await client.get("/metrics")
    assert "crm_http_requests_total" in metrics.text


async def test_correlation_id_is_echoed_and_carried_into_published_events(client, engine):
    resp = await client.post("/v1/events", json=[order("C-8")], headers={"X-Correlation-ID": "req-42"})
    assert resp.headers["x-correlation-id"] == "req-42"
    async with engine.connect() as conn:
        ids = (
            (await conn.execute(sa.text("select convert_from(payload, 'UTF8')::jsonb->>'correlationid' from interaction.outbox")))
            .scalars()
            .all()
        )
    assert ids and set(ids) == {"req-42"}


async def test_order_costs_are_stored_and_forwarded_with_the_purchase(client, engine):
    """Line costs and categories, shipping cost and discount travel to consumers in `purchase.recorded`
    (clv's profitability); an order without them, as partners sent before, still publishes a valid event."""
    costed = order("C-1", order_id="A-costs", amount="90.00")
    costed["data"].update(
        {
            "shipping_cost": "5.00",
            "discount": "10.00",
            "line_items": [
                {"sku": "book-1", "quantity": 2, "unit_price": "50.00", "unit_cost": "20.00", "category": "books"},
                {"sku": "gift-wrap", "unit_price": "0"},
            ],
        }
    )
    resp = await client.post("/v1/events", json=[costed, order("C-2", order_id="A-plain")])
    assert resp.json()["accepted"] == 2, resp.text
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.text("select order_id, shipping_cost, discount, line_items from interaction.purchase order by order_id")
            )
        ).all()
        published = [
            r[0]
            for r in (
                await conn.execute(
                    sa.text(
                        "select convert_from(payload, 'UTF8')::jsonb->'data' from interaction.outbox "
                        "where convert_from(payload, 'UTF8')::jsonb->>'type' = 'purchase.recorded' order by id"
                    )
                )
            ).all()
        ]
    assert [(r.order_id, r.shipping_cost, r.discount) for r in stored] == [
        ("A-costs", pytest.approx(5), pytest.approx(10)),
        ("A-plain", None, None),
    ]
    assert stored[0].line_items[0]["unit_cost"] == "20.00" and stored[0].line_items[0]["category"] == "books"
    by_order = {p["order_id"]: p for p in published}
    assert by_order["A-costs"]["shipping_cost"] == "5.00" and by_order["A-costs"]["discount"] == "10.00"
    assert by_order["A-costs"]["lines"][0] == {
        "sku": "book-1",
        "quantity": 2,
        "unit_price": "50.00",
        "unit_cost": "20.00",
        "category": "books",
    }
    assert by_order["A-costs"]["lines"][1]["unit_cost"] is None
    assert by_order["A-plain"]["lines"] == [] and by_order["A-plain"]["shipping_cost"] is None
    # Consumers read both with the contract, and an event published before the fields existed too.
    for data in published:
        PurchaseRecorded.model_validate(data)
    old = {k: v for k, v in by_order["A-plain"].items() if k not in ("lines", "shipping_cost", "discount")}
    assert PurchaseRecorded.model_validate(old).lines == []


async def test_rows_and_events_written_per_event_take_time_ordered_ids(client, engine):
    """Timeline rows, purchases and the events published get ids that sort in the order they were made
    (shared/ids.py): their inserts append to the indexes instead of landing on a random page each."""
    for n in range(3):
        resp = await client.post("/v1/events", json=[order(f"C-{n}-{i}") for i in range(10)])
        assert resp.json()["accepted"] == 10
    async with engine.connect() as conn:
        activity = (await conn.execute(sa.text("select id from interaction.activity order by ctid"))).scalars().all()
        purchases = (await conn.execute(sa.text("select id from interaction.purchase order by ctid"))).scalars().all()
        events = (await conn.execute(sa.text("select event_id from interaction.outbox order by id"))).scalars().all()
    for ids in (activity, purchases, [uuid.UUID(e) for e in events]):
        assert len(ids) >= 30 and all(i.version == 7 for i in ids) and ids == sorted(ids)
