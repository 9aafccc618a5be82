"""Profitability on a real Postgres: costs from the events, defaults when they are missing, refunds, cost to
serve from service touchpoints, projected profit from the latest scoring, and the profitability matrix."""

import asyncio
import importlib.util
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.contracts import interaction
from shared.contracts.interaction import (
    CustomerErased,
    CustomerMerged,
    CustomerUnmerged,
    PurchaseLine,
    TouchpointRecorded,
)
from shared.db import make_engine
from shared.migrations import downgrade, upgrade
from tests.services.clv.support import clv_service, refund, simulated_purchases
from tests.support import wait_until

import clv

DAY = datetime(2026, 10, 1, 12, tzinfo=UTC)
SETTINGS = "/v1/value/profitability/settings"


def order(
    customer: uuid.UUID,
    amount: str,
    *,
    lines: list[PurchaseLine] = (),
    shipping: str | None = None,
    discount: str | None = None,
    source: str = "shop",
    currency: str = "EUR",
    at: datetime = DAY,
) -> interaction.PurchaseRecorded:
    return interaction.PurchaseRecorded(
        customer_id=customer,
        purchase_id=uuid.uuid4(),
        source=source,
        order_id=uuid.uuid4().hex[:8],
        amount=Decimal(amount),
        currency=currency,
        channel="web",
        occurred_at=at,
        lines=list(lines),
        shipping_cost=None if shipping is None else Decimal(shipping),
        discount=None if discount is None else Decimal(discount),
    )


def line(price: str, cost: str | None = None, quantity: int = 1, category: str | None = None) -> PurchaseLine:
    return PurchaseLine(
        sku=uuid.uuid4().hex[:6],
        quantity=quantity,
        unit_price=Decimal(price),
        unit_cost=None if cost is None else Decimal(cost),
        category=category,
    )


def touch(customer: uuid.UUID, channel: str) -> TouchpointRecorded:
    return TouchpointRecorded(
        customer_id=customer, touchpoint_id=uuid.uuid4(), source="shop", channel=channel, direction="inbound", occurred_at=DAY
    )


async def _profit(svc, customer: uuid.UUID, currency: str = "EUR") -> dict | None:
    r = await svc.client.get(f"/v1/value/profitability/customers/{customer}")
    if r.status_code != 200:
        return None
    return next((c for c in r.json()["by_currency"] if c["currency"] == currency), None)


async def _settled(svc, customer: uuid.UUID, check, message: str) -> dict:
    async def ok() -> bool:
        body = await _profit(svc, customer)
        return body is not None and check(body)

    await wait_until(ok, timeout=30, message=message)
    return await _profit(svc, customer)


async def test_line_costs_refunds_and_service_touchpoints(database_url):
    ada = uuid.uuid4()
    # 2 × 50 at a unit cost of 20, shipped for 5, after a 10 discount: paid 90.
    first = order(ada, "90.00", lines=[line("50.00", "20.00", quantity=2)], shipping="5.00", discount="10.00")
    async with clv_service(database_url) as svc:
        put = await svc.client.put(
            SETTINGS,
            json={
                "touchpoint_costs": [
                    {"kind": "support", "currency": "EUR", "cost": "7.50"},
                    {"kind": "phone", "currency": "EUR", "cost": "10"},
                    {"kind": "return", "currency": "EUR", "cost": "3"},
                    {"kind": "support", "currency": "USD", "cost": "99"},
                ]
            },
        )
        assert put.status_code == 200, put.text
        await svc.publish([first])
        body = await _settled(svc, ada, lambda b: b["orders"] == 1, "order costed")
        assert body["revenue"] == "90.0000" and body["cost_of_goods"] == "40.0000", "line costs, not a margin"
        assert body["shipping_cost"] == "5.0000" and body["discounts"] == "10.0000"
        assert body["profit"] == "45.0000", "90 − 40 − 5: the discount is already out of what was paid"
        assert body["cost_to_serve"] == "15.0000", "shipping + discount"
        assert body["margin_rate"] == pytest.approx(50 / 90)

        # Half of it comes back: revenue and the goods kept halve, and handling the return costs 3.
        await svc.publish([refund(first, "45.00", DAY + timedelta(days=2))])
        body = await _settled(svc, ada, lambda b: b["refunded"] == "45.0000", "refund applied")
        assert body["net_revenue"] == "45.0000" and body["cost_of_goods"] == "20.0000"
        assert body["returns_cost"] == "3.0000"
        assert body["profit"] == "17.0000", "45 − 20 − 5 − 3: the refund lowered it from 45"

        # Service touchpoints cost what their kind costs in the customer's currency; a web visit costs nothing.
        await svc.publish([touch(ada, "support"), touch(ada, "support"), touch(ada, "phone"), touch(ada, "web")])
        body = await _settled(svc, ada, lambda b: b["touchpoints"] == 4, "touchpoints applied")
        assert body["service_cost"] == "25.0000", "2 × 7.50 + 10 (EUR costs, not the USD one)"
        assert body["cost_to_serve"] == "43.0000", "5 shipping + 3 return + 25 service + 10 discount"
        assert body["profit"] == "-8.0000"

        # A cancelled order counts for nothing.
        second = order(ada, "30.00", shipping="4.00")
        await svc.publish([second, refund(second, "30.00", DAY + timedelta(days=3), cancelled=True)])
        await svc.publish([touch(ada, "web")])
        body = await _settled(svc, ada, lambda b: b["touchpoints"] == 5, "cancellation applied")
        assert body["orders"] == 1 and body["profit"] == "-8.0000"


async def test_defaults_apply_when_the_event_has_no_cost(database_url):
    plain, lines, fallback = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with clv_service(database_url, margin=0.4) as svc:
        put = await svc.client.put(
            SETTINGS,
            json={
                "cost_rates": [
                    {"scope": "partner", "key": "shop", "cost_rate": 0.7},
                    {"scope": "category", "key": "books", "cost_rate": 0.5},
                ]
            },
        )
        assert put.status_code == 200, put.text
        assert put.json()["fallback_cost_rate"] == pytest.approx(0.6)
        await svc.publish(
            [
                order(plain, "100.00"),  # no lines: the partner's rate
                # costed line, category line, a line with neither: its own cost, the category's, the partner's
                order(lines, "60.00", lines=[line("10.00", "1.00"), line("20.00", category="books"), line("30.00")]),
                order(fallback, "100.00", source="elsewhere"),  # nothing known: 1 − margin
            ]
        )
        assert (await _settled(svc, plain, lambda b: True, "plain order"))["cost_of_goods"] == "70.0000"
        assert (await _settled(svc, lines, lambda b: True, "order with lines"))["cost_of_goods"] == "32.0000", (
            "1 + 0.5 × 20 + 0.7 × 30"
        )
        body = await _settled(svc, fallback, lambda b: True, "fallback order")
        assert body["cost_of_goods"] == "60.0000" and body["profit"] == "40.0000", "margin × revenue, as before"

        # A changed default re-costs history at the next read.
        await svc.client.put(SETTINGS, json={"cost_rates": [{"scope": "partner", "key": "shop", "cost_rate": 0.2}]})
        assert (await _profit(svc, plain))["cost_of_goods"] == "20.0000"
        assert (await svc.client.get(SETTINGS)).json()["cost_rates"] == [{"scope": "partner", "key": "shop", "cost_rate": 0.2}]


async def test_hostile_settings_and_queries_get_4xx(database_url):
    async with clv_service(database_url) as svc:
        twice = {"kind": "support", "currency": "EUR", "cost": "1"}
        for body in [
            {"touchpoint_costs": [twice, twice]},
            {"cost_rates": [{"scope": "galaxy", "key": "x", "cost_rate": 0.1}]},
            {"cost_rates": [{"scope": "partner", "key": "x", "cost_rate": -1}]},
            {"cost_rates": [{"scope": "category", "key": "bo\u0000oks", "cost_rate": 0.5}]},
            '{"cost_rates": [{"scope": "category", "key": "\\ud800", "cost_rate": 0.5}]}',
            '{"cost_rates": [{"scope": "category", "key": "x", "cost_rate": NaN}]}',
            {"touchpoint_costs": [{"kind": "support", "currency": "euro", "cost": "1"}]},
            {"touchpoint_costs": [{"kind": "support", "currency": "EUR", "cost": "1e400"}]},
            {"unknown": []},
        ]:
            raw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, str) else {"json": body}
            r = await svc.client.put(SETTINGS, **raw)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", (body, r.text)
        for params in [
            {},
            {"currency": "eur"},
            {"currency": "EUR", "revenue_threshold": "-1"},
            {"currency": "EUR", "cost_to_serve_threshold": "nan"},
        ]:
            r = await svc.client.get("/v1/value/profitability/matrix", params=params)
            assert r.status_code == 422, (params, r.text)
        missing = await svc.client.get(f"/v1/value/profitability/customers/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        empty = (await svc.client.get("/v1/value/profitability/matrix", params={"currency": "EUR"})).json()
        assert empty["customers"] == 0 and [q["customers"] for q in empty["quadrants"]] == [0, 0, 0, 0]


async def test_matrix_quadrants_order_customers_as_their_names_say(database_url):
    """Revenue × cost to serve per currency: carriage trade (high, high), passive (high, low), aggressive
    (low, high), bargain basement (low, low); thresholds are the currency's medians."""
    shapes = {  # (amount, shipping, support touchpoints)
        "carriage_trade": ("500.00", "30.00", 4),
        "passive": ("400.00", "2.00", 0),
        "aggressive": ("40.00", "25.00", 5),
        "bargain_basement": ("30.00", "1.00", 0),
    }
    customers: dict[str, list[uuid.UUID]] = {name: [uuid.uuid4() for _ in range(5)] for name in shapes}
    events = []
    for name, ids in customers.items():
        amount, shipping, tickets = shapes[name]
        for i, c in enumerate(ids):
            # Spread within the group, never across: the medians fall between the groups.
            events.append(
                order(c, str(Decimal(amount) + i), lines=[line(str(Decimal(amount) + i), category="x")], shipping=shipping)
            )
            events.extend(touch(c, "support") for _ in range(tickets))
    # USD customers worth far more must not move the EUR thresholds (and are not in the EUR matrix).
    dollars = [uuid.uuid4() for _ in range(30)]
    events.extend(order(c, "90000.00", shipping="900.00", currency="USD", source="us") for c in dollars)
    async with clv_service(database_url) as svc:
        await svc.client.put(SETTINGS, json={"touchpoint_costs": [{"kind": "support", "currency": "EUR", "cost": "6"}]})
        await svc.publish(events)

        async def loaded() -> bool:
            for name, ids in customers.items():
                for c in ids:
                    body = await _profit(svc, c)
                    if body is None or body["touchpoints"] != shapes[name][2]:
                        return False
            m = (await svc.client.get("/v1/value/profitability/matrix", params={"currency": "USD"})).json()
            return m["customers"] == 30

        await wait_until(loaded, timeout=30, message="matrix loaded")
        m = (await svc.client.get("/v1/value/profitability/matrix", params={"currency": "EUR"})).json()
        q = {x["quadrant"]: x for x in m["quadrants"]}
        assert [x["quadrant"] for x in m["quadrants"]] == list(shapes)
        assert {name: x["customers"] for name, x in q.items()} == {name: 5 for name in shapes}, m
        revenue = {name: Decimal(x["avg_net_revenue"]) for name, x in q.items()}
        cost = {name: Decimal(x["avg_cost_to_serve"]) for name, x in q.items()}
        for high in ["carriage_trade", "passive"]:
            for low in ["aggressive", "bargain_basement"]:
                assert revenue[high] > Decimal(m["revenue_threshold"]) >= revenue[low], (high, low, m)
        for high in ["carriage_trade", "aggressive"]:
            for low in ["passive", "bargain_basement"]:
                assert cost[high] > Decimal(m["cost_to_serve_threshold"]) >= cost[low], (high, low, m)
        assert Decimal(m["revenue_threshold"]) < 1000, "the EUR median, untouched by the USD customers"
        assert sum(x["share_of_profit"] for x in m["quadrants"]) == pytest.approx(1.0)
        # Each customer's own quadrant agrees with the matrix.
        for name, ids in customers.items():
            assert (await _profit(svc, ids[0]))["quadrant"] == name

        usd = (await svc.client.get("/v1/value/profitability/matrix", params={"currency": "USD"})).json()
        assert usd["customers"] == 30 and Decimal(usd["revenue_threshold"]) == Decimal("90000")
        # Thresholds given: everyone above 0 revenue and at most 1000 cost to serve is passive.
        fixed = (
            await svc.client.get(
                "/v1/value/profitability/matrix",
                params={"currency": "EUR", "revenue_threshold": "0", "cost_to_serve_threshold": "1000"},
            )
        ).json()
        assert {x["quadrant"]: x["customers"] for x in fixed["quadrants"]}["passive"] == 20


@pytest.mark.parametrize("versions", [(None, None), (3, 4)], ids=["before-identity-versions", "versioned"])
async def test_costs_follow_merges_unmerges_and_erasure(database_url, versions):
    """Facts come in under `merged` (their home); a versioned unmerge takes back what has that home, one from
    before versions exactly what it lists (shared/contracts/identity.py)."""
    survivor, merged = uuid.uuid4(), uuid.uuid4()
    theirs, first_touch, late_touch = (
        order(merged, "20.00", lines=[line("20.00", "5.00")]),
        touch(merged, "support"),
        touch(merged, "support"),
    )
    merge_id = uuid.uuid4()
    async with clv_service(database_url) as svc:
        await svc.client.put(SETTINGS, json={"touchpoint_costs": [{"kind": "support", "currency": "EUR", "cost": "4"}]})
        await svc.publish([order(survivor, "10.00", lines=[line("10.00", "6.00")]), first_touch, theirs])
        await _settled(svc, merged, lambda b: b["touchpoints"] == 1, "merged-away customer's facts")
        await svc.publish(
            [
                CustomerMerged(
                    customer_id=survivor,
                    merge_id=merge_id,
                    survivor_id=survivor,
                    merged_id=merged,
                    reason="same email",
                    merged_at=DAY,
                    version=versions[0],
                )
            ]
        )
        await svc.publish([late_touch])  # late, keyed by the merged-away id
        body = await _settled(svc, survivor, lambda b: b["touchpoints"] == 2, "merge applied")
        assert body["orders"] == 2 and body["profit"] == "11.0000", "30 − (6 + 5) goods − 2 × 4 support"
        via_old = (await svc.client.get(f"/v1/value/profitability/customers/{merged}")).json()
        assert via_old["customer_id"] == str(survivor) and via_old["resolved_from"] == str(merged)

        await svc.publish(
            [
                CustomerUnmerged(
                    customer_id=survivor,
                    merge_id=merge_id,
                    survivor_id=survivor,
                    restored_id=merged,
                    purchase_ids=[theirs.purchase_id],
                    touchpoint_ids=[first_touch.touchpoint_id, late_touch.touchpoint_id],
                    unmerged_at=DAY,
                    version=versions[1],
                )
            ]
        )
        body = await _settled(svc, survivor, lambda b: b["touchpoints"] == 0, "unmerge applied")
        assert body["orders"] == 1 and body["profit"] == "4.0000"
        restored = await _profit(svc, merged)
        assert restored["orders"] == 1 and restored["touchpoints"] == 2 and restored["profit"] == "7.0000"

        await svc.publish([CustomerErased(customer_id=merged, erased_at=DAY)])

        async def erased() -> bool:
            return (await svc.client.get(f"/v1/value/profitability/customers/{merged}")).status_code == 404

        await wait_until(erased, timeout=30, message="erasure applied")
        assert (await _profit(svc, survivor))["orders"] == 1


async def test_projected_profit_uses_the_latest_scoring(database_url):
    as_of = datetime(2026, 11, 1, tzinfo=UTC)
    events = simulated_purchases(400, as_of, seed=5)
    ada = events[0].customer_id
    async with clv_service(database_url, margin=0.5) as svc:
        await svc.client.put(SETTINGS, json={"touchpoint_costs": [{"kind": "support", "currency": "EUR", "cost": "8"}]})
        await svc.publish(events + [touch(ada, "support")])
        await _settled(svc, ada, lambda b: b["touchpoints"] == 1, "history costed")
        assert (await _profit(svc, ada))["projected"] is None, "not scored yet"
        fit = await svc.client.post(
            "/v1/value/models/fits", json={"model": "bgnbd", "currency": "EUR", "as_of": as_of.isoformat()}
        )
        assert (await svc.poll(f"/v1/value/models/fits/{fit.json()['id']}"))["status"] == "succeeded"
        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": fit.json()["id"]})
        assert (await svc.poll(f"/v1/value/scorings/{run.json()['id']}"))["status"] == "succeeded"
        value = (await svc.client.get(f"/v1/customers/{ada}/value")).json()["by_currency"][0]["model"]
        body = await _profit(svc, ada)
        p = body["projected"]
        expected_revenue = float(value["clv"]) / 0.5
        assert float(p["expected_revenue"]) == pytest.approx(expected_revenue, abs=1e-3)
        assert p["expected_purchases"] == pytest.approx(expected_revenue / float(value["expected_spend"]), rel=1e-6)
        per_order = (float(body["shipping_cost"]) + float(body["service_cost"]) + float(body["returns_cost"])) / body["orders"]
        assert per_order > 0, "the support touchpoint is a cost to serve"
        assert float(p["expected_cost_to_serve"]) == pytest.approx(p["expected_purchases"] * per_order, abs=1e-3)
        assert float(p["projected_profit"]) == pytest.approx(
            expected_revenue * body["margin_rate"] - p["expected_purchases"] * per_order, abs=2e-3
        )
        assert body["margin_rate"] == pytest.approx(0.5), "no costs in these events: 1 − margin"


async def test_install_copies_history_and_events_replace_the_copies(database_url):
    """The migration copies clv's purchases and refunds with their homes (costed by the defaults) and follows
    clv's merges; a purchase event the topic still holds then replaces its copy with the partner's costs, once."""
    migrations = Path(clv.__file__).parent / "migrations"
    spec = importlib.util.spec_from_file_location(
        "profitability_migration", next((migrations / "versions").glob("*_profitability.py"))
    )
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    await asyncio.to_thread(downgrade, migrations, "clv", database_url, migration.down_revision)
    ada, merged, merge_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    old = [order(ada, "100.00"), order(ada, "50.00")]
    theirs = order(merged, "30.00")  # came in under `merged`, with ada since the merge
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            for p, customer in [(old[0], ada), (old[1], ada), (theirs, ada)]:
                await conn.execute(
                    sa.text(
                        "INSERT INTO clv.purchase (purchase_id, customer_id, home_customer_id, currency, amount, "
                        "occurred_at) VALUES (:id, :c, :h, 'EUR', :a, :t)"
                    ),
                    {"id": p.purchase_id, "c": customer, "h": p.customer_id, "a": p.amount, "t": p.occurred_at},
                )
            await conn.execute(
                sa.text(
                    "INSERT INTO clv.refund (refund_id, purchase_id, amount, cancelled, occurred_at)"
                    " VALUES (:id, :p, 50, true, :t)"
                ),
                {"id": uuid.uuid4(), "p": old[1].purchase_id, "t": DAY},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO clv.customer_merge (merge_id, survivor_id, merged_id, version, "
                    "undone) VALUES (:id, :s, :m, 7, false)"
                ),
                {"m": merged, "s": ada, "id": merge_id},
            )
            await conn.execute(
                sa.text("INSERT INTO clv.customer_alias (merged_id, survivor_id, merge_id) VALUES (:m, :s, :id)"),
                {"m": merged, "s": ada, "id": merge_id},
            )
    finally:
        await engine.dispose()
    await asyncio.to_thread(upgrade, migrations, "clv", database_url)
    async with clv_service(database_url, margin=0.3) as svc:
        body = (await svc.client.get(f"/v1/value/profitability/customers/{merged}")).json()
        assert body["customer_id"] == str(ada), "clv's merges are followed"
        copied = body["by_currency"][0]
        assert copied["orders"] == 2 and copied["cost_of_goods"] == "91.0000", "the cancelled one is out; 1 − margin"
        # The undo of a versioned merge lists nothing the copy needs: the copied home takes the order back.
        await svc.publish(
            [
                CustomerUnmerged(
                    customer_id=ada, merge_id=merge_id, survivor_id=ada, restored_id=merged, unmerged_at=DAY, version=8
                )
            ]
        )
        restored = await _settled(svc, merged, lambda b: b["orders"] == 1, "the unmerge gave the order back home")
        assert restored["revenue"] == "30.0000"

        costed = old[0].model_copy(update={"lines": [line("100.00", "40.00")], "shipping_cost": Decimal("5")})
        await svc.publish([costed])
        body = await _settled(svc, ada, lambda b: b["cost_of_goods"] == "40.0000", "the event replaced the copy")
        assert body["shipping_cost"] == "5.0000" and body["profit"] == "55.0000"
        again = old[0].model_copy(update={"lines": [line("100.00", "90.00")]})
        await svc.publish([again, touch(ada, "support")])
        body = await _settled(svc, ada, lambda b: b["touchpoints"] == 1, "second copy of the event applied")
        assert body["cost_of_goods"] == "40.0000", "an event replaces a copy, never an event"
