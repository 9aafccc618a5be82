"""Purchases, refunds, cancellations, merges, unmerges and erasure as the clv service folds them."""

import uuid
from datetime import UTC, datetime, timedelta

from shared.contracts.interaction import CustomerErased, CustomerMerged, CustomerUnmerged
from tests.services.clv.support import clv_service, purchase, refund
from tests.support import wait_until

DAY = datetime(2026, 10, 1, 12, tzinfo=UTC)


async def _value(svc, customer_id):
    return await svc.client.get(f"/v1/customers/{customer_id}/value")


async def test_refunds_lower_value_and_cancelled_orders_stop_counting(database_url):
    ada = uuid.uuid4()
    first, second, third = (
        purchase(ada, amount, DAY + timedelta(days=i)) for i, amount in enumerate(["100.00", "50.00", "30.00"])
    )
    async with clv_service(database_url, margin=0.4) as svc:
        await svc.publish(
            [
                first,
                second,
                third,
                refund(first, "20.00", DAY + timedelta(days=5)),
                refund(second, "50.00", DAY + timedelta(days=6), cancelled=True),
            ]
        )

        async def settled() -> bool:
            r = await _value(svc, ada)
            return r.status_code == 200 and r.json()["by_currency"][0]["purchase_count"] == 2

        await wait_until(settled, timeout=30, message="refunds applied")
        body = (await _value(svc, ada)).json()["by_currency"][0]
        assert body["gross_revenue"] == "130.0000", "the cancelled order no longer counts"
        assert body["refunded"] == "20.0000"
        assert body["historical_value"] == "44.0000", "0.4 × (130 − 20)"
        assert body["model"] is None
        assert body["last_purchase_at"].startswith("2026-10-03"), "the cancelled order is not the last purchase"
        missing = await _value(svc, uuid.uuid4())
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_merge_unmerge_and_erasure(database_url):
    survivor, merged, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mine = purchase(survivor, "10.00", DAY)
    theirs = [purchase(merged, "5.00", DAY + timedelta(days=1)), purchase(merged, "7.00", DAY + timedelta(days=2))]
    merge_id = uuid.uuid4()
    async with clv_service(database_url) as svc:
        await svc.publish([mine, *theirs, purchase(other, "1.00", DAY)])
        await svc.publish(
            [
                CustomerMerged(
                    customer_id=survivor,
                    merge_id=merge_id,
                    survivor_id=survivor,
                    merged_id=merged,
                    reason="same email",
                    merged_at=DAY,
                )
            ]
        )
        # A refund of a merged purchase keyed by the survivor lands on the survivor.
        await svc.publish([refund(theirs[0], "5.00", DAY + timedelta(days=3), customer_id=survivor)])

        async def merged_view() -> bool:
            r = await _value(svc, survivor)
            return (
                r.status_code == 200
                and r.json()["by_currency"][0]["purchase_count"] == 3
                and r.json()["by_currency"][0]["refunded"] == "5.0000"
            )

        await wait_until(merged_view, timeout=30, message="merge applied")
        via_old_id = (await _value(svc, merged)).json()
        assert via_old_id["customer_id"] == str(survivor) and via_old_id["resolved_from"] == str(merged)
        assert via_old_id["by_currency"][0]["historical_value"] == "17.0000"

        # A purchase keyed by the merged-away id that arrives after the merge lands on the survivor.
        late = purchase(merged, "3.00", DAY + timedelta(days=4))
        await svc.publish([late])

        async def late_applied() -> bool:
            r = await _value(svc, survivor)
            return r.json()["by_currency"][0]["purchase_count"] == 4

        await wait_until(late_applied, timeout=30, message="late purchase redirected")
        theirs.append(late)

        await svc.publish(
            [
                CustomerUnmerged(
                    customer_id=survivor,
                    merge_id=merge_id,
                    survivor_id=survivor,
                    restored_id=merged,
                    purchase_ids=[p.purchase_id for p in theirs],
                    unmerged_at=DAY,
                )
            ]
        )

        async def split() -> bool:
            r = await _value(svc, merged)
            return r.status_code == 200 and r.json()["customer_id"] == str(merged)

        await wait_until(split, timeout=30, message="unmerge applied")
        restored = (await _value(svc, merged)).json()["by_currency"][0]
        assert restored["purchase_count"] == 3 and restored["refunded"] == "5.0000", "the late purchase moves back too"
        assert (await _value(svc, survivor)).json()["by_currency"][0]["gross_revenue"] == "10.0000"

        await svc.publish([CustomerErased(customer_id=merged, erased_at=DAY)])

        async def erased() -> bool:
            return (await _value(svc, merged)).status_code == 404

        await wait_until(erased, timeout=30, message="erasure applied")
        engine = svc.app.state.runtime.engine
        async with engine.connect() as conn:
            import sqlalchemy as sa

            left = (
                await conn.execute(sa.text("select count(*) from clv.purchase where customer_id = :c"), {"c": merged})
            ).scalar()
            refunds = (await conn.execute(sa.text("select count(*) from clv.refund"))).scalar()
        assert left == 0 and refunds == 0, "the erased customer's purchases and refunds are gone"
        assert (await _value(svc, other)).status_code == 200
