"""Campaigns and their report on a real Postgres: first-touch attribution, first purchases after the lead,
net revenue and CLV of the acquired customers in one currency, cost per acquisition and return, by campaign,
by lead source, over a period and by cohort; merges, redelivery and out-of-order CLV versions."""

import importlib.util
import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from shared.contracts import clv, interaction
from tests.services.lifecycle.conftest import NOW, days_ago, envelope

import lifecycle


def lead(cid, days: float, campaign: str | None, source: str | None, qualified: bool = False):
    return envelope(
        interaction.LeadCaptured(
            customer_id=cid, source="web", campaign=campaign, lead_source=source, qualified=qualified, occurred_at=days_ago(days)
        )
    )


def bought(cid, days: float, amount: str, currency: str = "EUR", purchase_id=None, home=None):
    return envelope(
        interaction.PurchaseRecorded(
            customer_id=cid,
            purchase_id=purchase_id or uuid.uuid4(),
            source="shop",
            order_id=str(uuid.uuid4()),
            amount=Decimal(amount),
            currency=currency,
            channel="web",
            occurred_at=days_ago(days),
            home_customer_id=home,
        )
    )


def refunded(cid, purchase_id, amount: str, cancelled: bool = False):
    return envelope(
        interaction.PurchaseRefunded(
            customer_id=cid,
            purchase_id=purchase_id,
            refund_id=uuid.uuid4(),
            source="shop",
            order_id="x",
            amount=Decimal(amount),
            currency="EUR",
            cancelled=cancelled,
            occurred_at=NOW,
        )
    )


def valued(cid, amount: str, version: int):
    return envelope(
        clv.CustomerValueUpdated(
            customer_id=cid,
            currency="EUR",
            historical_value=Decimal(1),
            current_value=Decimal(1),
            potential_value=Decimal(1),
            clv=Decimal(amount),
            probability_alive=0.9,
            expected_purchases=1,
            tier="gold",
            as_of=NOW,
            version=version,
        )
    )


async def apply(lc, events) -> None:
    await lc.apply(events)  # the facts consumer's batch, which feeds the campaign copy


async def report(lc, **params) -> dict:
    resp = await lc.client.get("/v1/campaigns/report", params={"currency": "EUR", **params})
    assert resp.status_code == 200, resp.text
    return {(r["key"], r["cohort"]) if params.get("cohort") else r["key"]: r for r in resp.json()["rows"]}


async def test_campaign_resource_and_report(lc):
    spring = {
        "key": "spring-sale",
        "name": "Spring sale",
        "currency": "EUR",
        "budget": "500",
        "cost": "300",
        "channel": "email",
        "starts_on": "2026-03-01",
        "ends_on": "2026-05-31",
    }
    assert (await lc.client.post("/v1/campaigns", json=spring)).status_code == 201
    assert (await lc.client.post("/v1/campaigns", json=spring)).status_code == 409
    assert (await lc.client.post("/v1/campaigns", json={**spring, "key": "report"})).status_code == 422
    assert (await lc.client.post("/v1/campaigns", json={**spring, "key": "x", "ends_on": "2026-01-01"})).status_code == 422
    for hostile in (
        r'{"key": "k", "name": "\ud800", "currency": "EUR"}',
        r'{"key": "k\ud800", "name": "n", "currency": "EUR"}',
        r'{"key": "k", "name": "n", "currency": "EUR", "channel": "\u0000"}',
    ):
        resp = await lc.client.post("/v1/campaigns", content=hostile, headers={"content-type": "application/json"})
        assert resp.status_code == 422, (hostile, resp.status_code, resp.text)  # was a 500 (the fuzz test found it)
    # A key beyond Latin-1 (partners' free text) is registered; its Location is percent-encoded and leads back.
    created = await lc.client.post("/v1/campaigns", json={"key": "Frühling €5 ?#% \U000c7f59", "name": "n", "currency": "EUR"})
    assert created.status_code == 201, created.text  # was a 500: the Location header could not hold the key
    assert created.headers["location"] == "/v1/campaigns/Fr%C3%BChling%20%E2%82%AC5%20%3F%23%25%20%F3%87%BD%99"
    assert (await lc.client.get(created.headers["location"])).json()["key"] == "Frühling €5 ?#% \U000c7f59"
    webinar = {"key": "webinar-q3", "name": "Webinar", "currency": "EUR"}
    assert (await lc.client.post("/v1/campaigns", json=webinar)).status_code == 201
    page = (await lc.client.get("/v1/campaigns", params={"limit": 2})).json()
    rest = (await lc.client.get("/v1/campaigns", params={"cursor": page["next_cursor"]})).json()
    assert [c["key"] for c in page["items"] + rest["items"]] == ["Frühling €5 ?#% \U000c7f59", "spring-sale", "webinar-q3"]
    assert not rest["next_cursor"]
    bad = await lc.client.patch("/v1/campaigns/spring-sale", json={"ends_on": "2026-02-01"})
    assert bad.status_code == 422
    assert (await lc.client.patch("/v1/campaigns/nope", json={"cost": "1"})).status_code == 404

    a, b, c, d, e, f = (uuid.uuid4() for _ in range(6))
    pa, pe = uuid.uuid4(), uuid.uuid4()
    events = [
        lead(a, 30, "spring-sale", "web", qualified=True),
        bought(a, 25, "100.00", purchase_id=pa),
        refunded(a, pa, "20.00"),
        lead(b, 20, "spring-sale", "ads"),
        lead(b, 10, "webinar-q3", "web"),
        bought(b, 5, "50.00"),
        lead(c, 15, "spring-sale", "web", qualified=True),
        bought(d, 40, "70.00"),
        lead(d, 30, "webinar-q3", "event"),  # a customer already: no acquisition
        lead(e, 12, "webinar-q3", "event"),
        bought(e, 11, "80.00", purchase_id=pe),
        lead(f, 8, "fair", "event"),
        bought(f, 7, "30.00", currency="USD"),
        valued(a, "500", 2),
        valued(b, "200", 1),
        valued(d, "900", 1),
    ]
    await apply(lc, events)
    await apply(
        lc,
        events[:5]
        + [
            valued(a, "999", 1),  # redelivered, and an older CLV version after a newer one
            refunded(e, pe, "80.00", cancelled=True),
        ],
    )  # e's only order is cancelled

    rows = await report(lc)
    s = rows["spring-sale"]
    assert (s["name"], s["leads"], s["qualified_leads"], s["customers"], s["first_purchases"]) == ("Spring sale", 3, 2, 3, 2)
    assert (Decimal(s["revenue"]), Decimal(s["clv"]), Decimal(s["cost"])) == (130, 700, 300)
    assert s["revenue"] == "130.0000" and Decimal(s["cost_per_acquisition"]) == 150
    assert s["return_on_cost"] == round((130 - 300) / 300, 4) and s["clv_return_on_cost"] == round(400 / 300, 4)
    assert s["conversion_rate"] == round(2 / 3, 4)
    w = rows["webinar-q3"]
    assert (w["leads"], w["customers"], w["first_purchases"], Decimal(w["revenue"])) == (3, 2, 0, 0)
    assert w["cost"] is None and w["cost_per_acquisition"] is None, "no cost given: no CPA"
    fair = rows["fair"]
    assert (fair["name"], fair["first_purchases"], Decimal(fair["revenue"])) == (None, 1, 0), "USD revenue is not EUR"
    assert (await report(lc, currency="USD"))["fair"]["revenue"] == "30.0000"

    by_source = await report(lc, group_by="lead_source")
    assert {k: (r["leads"], r["customers"], r["first_purchases"], Decimal(r["revenue"])) for k, r in by_source.items()} == {
        "web": (3, 2, 1, 80),
        "ads": (1, 1, 1, 50),
        "event": (3, 3, 1, 0),
    }
    assert all(r["cost"] is None for r in by_source.values())

    cohorts = await report(lc, cohort="week")
    spring_weeks = [r for (k, _), r in cohorts.items() if k == "spring-sale"]
    assert sum(r["leads"] for r in spring_weeks) == 3 and sum(r["first_purchases"] for r in spring_weeks) == 2
    assert all(r["cohort"] is not None and r["cost"] is None for r in spring_weeks)

    recent = await report(lc, **{"from": days_ago(16).isoformat()})
    assert (recent["spring-sale"]["leads"], recent["spring-sale"]["customers"]) == (1, 1)

    # A merge folds c into b (b was reached first by spring): one customer fewer, every lead still counted.
    # c's purchase recorded after the merge comes keyed by b, but its home is c (shared/contracts/identity.py).
    merge_id = uuid.uuid4()
    merged = envelope(
        interaction.CustomerMerged(
            customer_id=b, merge_id=merge_id, survivor_id=b, merged_id=c, reason="same email", merged_at=NOW, version=1
        )
    )
    await apply(lc, [merged, bought(b, 3, "40.00", home=c)])
    s = (await report(lc))["spring-sale"]
    assert (s["leads"], s["customers"], s["first_purchases"], Decimal(s["revenue"])) == (3, 2, 2, 170)
    # The undo lists no purchases (a versioned unmerge: homes say where each fact goes): c's purchase goes back
    # to c, now a first purchase after its own lead. The merge redelivered after its undo changes nothing.
    await apply(
        lc,
        [
            envelope(
                interaction.CustomerUnmerged(
                    customer_id=b, merge_id=merge_id, survivor_id=b, restored_id=c, unmerged_at=NOW, version=2
                )
            )
        ],
    )
    for _ in range(2):
        s = (await report(lc))["spring-sale"]
        assert (s["leads"], s["customers"], s["first_purchases"], Decimal(s["revenue"])) == (3, 3, 3, 170)
        await apply(lc, [merged])
    # Erasure: the lead's free text (campaign, source) may name the customer; the erased customer's leads go.
    await apply(lc, [envelope(interaction.CustomerErased(customer_id=c, erased_at=NOW))])
    assert (await lc.sql("SELECT count(*) FROM lifecycle.campaign_lead WHERE home_customer_id = :c", c=c))[0][0] == 0
    s = (await report(lc))["spring-sale"]
    assert (s["leads"], s["customers"], s["first_purchases"]) == (2, 2, 2)
    # Erasing a survivor takes the leads of every customer merged into it.
    await apply(
        lc,
        [
            envelope(
                interaction.CustomerMerged(
                    customer_id=b,
                    merge_id=uuid.uuid4(),
                    survivor_id=b,
                    merged_id=d,
                    reason="same phone",
                    merged_at=NOW,
                    version=3,
                )
            ),
            envelope(interaction.CustomerErased(customer_id=b, erased_at=NOW)),
        ],
    )
    assert (await lc.sql("SELECT count(*) FROM lifecycle.campaign_lead WHERE home_customer_id IN (:b, :d)", b=b, d=d))[0][0] == 0
    rows = await report(lc)
    assert (rows["spring-sale"]["leads"], rows["webinar-q3"]["leads"]) == (1, 1)

    for params in (
        {},
        {"currency": "EUR", "from": NOW.isoformat(), "to": days_ago(1).isoformat()},
        {"currency": "EUR", "group_by": "partner"},
        {"currency": "eur"},
        # Instants whose UTC (or the default year before them) leaves datetime's range: were a 500.
        {"currency": "EUR", "to": "0001-01-01T00:00:00+14:00"},
        {"currency": "EUR", "from": "9999-12-31T23:59:59-14:00"},
    ):
        resp = await lc.client.get("/v1/campaigns/report", params=params)
        assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json"), params


async def test_the_upgrade_takes_purchases_and_refunds_over_from_the_facts(lc):
    """The copy is fed by the facts consumer, which has read the topics before the upgrade: migration 0010 fills
    it from lifecycle's facts, so a customer's orders from before still precede a lead captured after."""
    path = Path(lifecycle.__file__).parent / "migrations/versions/2026_12_04_0010_campaigns.py"
    spec = importlib.util.spec_from_file_location("campaigns_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    old, new, kept, cancelled = (uuid.uuid4() for _ in range(4))
    await apply(
        lc,
        [
            bought(old, 40, "70.00", purchase_id=kept),
            bought(new, 3, "30.00", purchase_id=cancelled),
            refunded(old, kept, "20.00"),
            refunded(new, cancelled, "30.00", cancelled=True),
        ],
    )
    before = await lc.sql(
        "SELECT purchase_id, home_customer_id, amount, currency, occurred_at "
        "FROM lifecycle.campaign_purchase ORDER BY purchase_id"
    )
    refunds = await lc.sql("SELECT purchase_id, amount, cancelled FROM lifecycle.campaign_refund ORDER BY purchase_id")
    async with lc.runtime.session_factory() as session, session.begin():  # as before the upgrade: empty copies
        await session.execute(sa.text("DELETE FROM lifecycle.campaign_purchase"))
        await session.execute(sa.text("DELETE FROM lifecycle.campaign_refund"))
        for _ in range(2):  # the backfill is idempotent
            for statement in migration.BACKFILL:
                await session.execute(sa.text(statement))
    assert (
        await lc.sql(
            "SELECT purchase_id, home_customer_id, amount, currency, occurred_at "
            "FROM lifecycle.campaign_purchase ORDER BY purchase_id"
        )
        == before
        and len(before) == 2
    )
    assert (
        await lc.sql("SELECT purchase_id, amount, cancelled FROM lifecycle.campaign_refund ORDER BY purchase_id") == refunds
        and len(refunds) == 2
    )
    # Leads after the upgrade: `old` was a customer before its lead, so its order after it is no first purchase
    # (without the backfill it would be); `new` bought nothing after its lead.
    await apply(lc, [lead(old, 2, "autumn", "web"), lead(new, 2, "autumn", "web"), bought(old, 1, "5.00")])
    autumn = (await report(lc))["autumn"]
    assert (autumn["leads"], autumn["customers"], autumn["first_purchases"]) == (2, 2, 0)
