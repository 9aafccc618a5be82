"""The owner's side of one truth: versions on stage.changed, net spend, and a history the API would allow."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from shared.contracts import interaction
from shared.contracts.lifecycle import Stage
from tests.services.lifecycle.conftest import days_ago, envelope, feedback, purchase, value

from lifecycle.rules.engine import ALLOWED_MANUAL


async def published_stage_events(lc, cid: uuid.UUID) -> list[dict]:
    rows = await lc.sql("SELECT payload FROM lifecycle.outbox WHERE key = :k ORDER BY id", k=str(cid))
    return [d for d in (orjson.loads(r.payload)["data"] for r in rows) if "to_stage" in d]


async def test_a_correction_dated_in_the_past_gets_a_greater_version(lc):
    """The reported divergence: a late purchase un-churns a customer with an event dated before the churn."""
    cid = uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(400))])  # development, then churned by the clock 35 days ago
    assert (await lc.view(cid))["stage"] == "churned"
    await lc.apply([purchase(cid, days_ago(100))])  # late: the customer never churned
    assert (await lc.view(cid))["stage"] == "retention"

    events = await published_stage_events(lc, cid)
    assert [e["to_stage"] for e in events] == ["development", "churned", "retention"]
    assert events[-1]["changed_at"] < events[-2]["changed_at"], "business time goes back"
    versions = [e["version"] for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 3, "the owner's order goes forward"
    [(stored,)] = await lc.sql("SELECT version FROM lifecycle.customer_stage WHERE customer_id = :c", c=cid)
    assert stored == versions[-1]


async def test_total_spend_is_net_of_refunds(lc):
    cid, p1, p2, p3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def refund(pid: uuid.UUID, amount: str, cancelled: bool = False):
        return envelope(
            interaction.PurchaseRefunded(
                customer_id=cid,
                purchase_id=pid,
                refund_id=uuid.uuid4(),
                source="shop",
                order_id="x",
                amount=Decimal(amount),
                currency="EUR",
                cancelled=cancelled,
                occurred_at=days_ago(1),
            )
        )

    # A refund before its purchase, a partial refund, an over-refund (floored at zero), a cancellation.
    await lc.apply([refund(p1, "4.00")])
    await lc.apply(
        [
            purchase(cid, days_ago(30), p1, amount="10.00"),
            purchase(cid, days_ago(20), p2, amount="7.00"),
            purchase(cid, days_ago(10), p3, amount="5.00"),
            refund(p2, "9.00"),
        ]
    )
    await lc.apply([refund(p3, "5.00", cancelled=True)])
    view = await lc.view(cid)
    assert (view["order_count"], view["total_spend"]) == (2, "6.0000")
    assert view["spend_by_currency"] == {"EUR": "6.0000"}


async def test_spend_is_never_added_across_currencies(lc):
    """Like profile, segmentation and clv, lifecycle keeps net spend per currency: a customer who bought in two
    currencies has one figure per currency and no `total_spend` (it used to add 10 EUR and 7 USD up to 17)."""
    cid, p1, p2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    usd = envelope(
        interaction.PurchaseRecorded(
            customer_id=cid,
            purchase_id=p2,
            source="shop",
            order_id="u",
            amount=Decimal("7.00"),
            currency="USD",
            channel="web",
            occurred_at=days_ago(10),
        )
    )
    await lc.apply([purchase(cid, days_ago(30), p1, amount="10.00")])
    view = await lc.view(cid)
    assert (view["total_spend"], view["spend_by_currency"]) == ("10.0000", {"EUR": "10.0000"})
    await lc.apply([usd])
    view = await lc.view(cid)
    assert view["order_count"] == 2
    assert view["total_spend"] is None
    assert view["spend_by_currency"] == {"EUR": "10.0000", "USD": "7.0000"}


async def test_a_manual_move_checked_against_an_order_timed_ahead_stays_allowed_in_the_history(lc):
    """Churned, an order timed 20 hours ahead reactivates (retention), a person moves to loyalty (allowed from
    retention): the replay must not record churned → loyalty, which the API forbids."""
    cid = uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(100)), value(cid, days_ago(50), "bronze", 0.05)])
    await lc.apply([purchase(cid, datetime.now(UTC) + timedelta(hours=20))])
    assert (await lc.view(cid))["stage"] == "retention"

    resp = await lc.client.post(f"/v1/customers/{cid}/lifecycle/moves", json={"to_stage": "loyalty", "reason": "VIP"})
    assert resp.status_code == 201, resp.text
    await lc.apply([feedback(cid, days_ago(1), nps=5)])  # any later replay, at the current time
    view = await lc.view(cid)
    assert [h["stage"] for h in view["history"]] == ["development", "churned", "retention", "loyalty"]
    for h in view["history"]:
        if h["rule"] == "manual":
            assert Stage(h["stage"]) in ALLOWED_MANUAL[Stage(h["from_stage"])], h
