"""Merges, unmerges and erasure are honoured by aggregates, memberships, results and the API."""

import uuid

import sqlalchemy as sa

from tests.services.segmentation.helpers import erased, merged, purchase, stage, touch, unmerged, updated, value
from tests.services.segmentation.test_runs_api import run

TABLES = [
    "purchase",
    "purchase_refund",
    "touchpoint",
    "purchase_summary",
    "customer_aggregate",
    "segment_membership",
    "run_result",
]


async def rows_for(feeder, customer_id: uuid.UUID) -> dict[str, int]:
    async with feeder.engine.connect() as conn:
        return {
            t: (
                await conn.execute(sa.text(f"SELECT count(*) FROM segmentation.{t} WHERE customer_id = :c"), {"c": customer_id})
            ).scalar_one()
            for t in TABLES
        }


async def test_merge_folds_into_survivor_unmerge_restores_erasure_deletes(client, feeder):
    survivor, other, bystander = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    p1, p2 = purchase(survivor, "100.00", 1), purchase(other, "40.00", 5)
    t2 = touch(other, 6)
    await feeder.apply(
        [
            p1,
            p2,
            t2,
            purchase(bystander, "1.00", 2),
            updated(survivor, plan="gold"),
            updated(other, plan="silver", region="eu"),
            value(other, "900", "platinum"),
            stage(survivor, "development"),
        ]
    )
    await run(client, kind="rfm", as_of="2026-06-01T00:00:00Z")

    merge = merged(survivor, other)
    await feeder.apply([merge])
    view = (await client.get(f"/v1/customers/{other}/segmentation")).json()
    assert view["customer_id"] == str(survivor), "a merged-away id answers as its survivor"
    assert view["order_count"] == 2 and view["touchpoint_count"] == 1
    assert view["by_currency"][0]["total_spend"] == "140.0000"
    assert view["value"]["tier"] == "platinum" and view["stage"] == "development"
    counts = await rows_for(feeder, other)
    assert counts["purchase"] == 0
    async with feeder.engine.connect() as conn:
        kept = (
            await conn.execute(
                sa.text("SELECT order_count, value_tier FROM segmentation.customer_aggregate WHERE customer_id = :c"),
                {"c": other},
            )
        ).one()
    # What came from interaction is the survivor's now; the copy of clv's value stays with the id clv names (it
    # follows clv's versions only: an unmerge would restore the customer with it).
    assert tuple(kept) == (0, "platinum")
    async with feeder.engine.connect() as conn:
        attributes = (
            await conn.execute(
                sa.text("SELECT attributes FROM segmentation.customer_aggregate WHERE customer_id = :c"), {"c": survivor}
            )
        ).scalar()
        open_for_other = (
            await conn.execute(
                sa.text("SELECT count(*) FROM segmentation.segment_membership WHERE customer_id = :c AND left_at IS NULL"),
                {"c": other},
            )
        ).scalar()
    assert attributes == {"plan": "gold", "region": "eu"}, "the survivor's attributes win"
    assert open_for_other == 0

    # A late event for the merged id lands on the survivor.
    await feeder.apply([purchase(other, "10.00", 7)])
    assert (await client.get(f"/v1/customers/{survivor}/segmentation")).json()["order_count"] == 3

    await feeder.apply([unmerged(survivor, other, [p2.purchase_id], [t2.touchpoint_id], merge.merge_id)])
    restored = (await client.get(f"/v1/customers/{other}/segmentation")).json()
    assert restored["customer_id"] == str(other) and restored["order_count"] == 1
    assert restored["by_currency"][0]["total_spend"] == "40.0000" and restored["touchpoint_count"] == 1
    assert (await client.get(f"/v1/customers/{survivor}/segmentation")).json()["order_count"] == 2

    await feeder.apply([erased(survivor)])
    assert (await client.get(f"/v1/customers/{survivor}/segmentation")).status_code == 404
    assert (await client.get(f"/v1/customers/{survivor}/segments/history")).status_code == 404
    assert set((await rows_for(feeder, survivor)).values()) == {0}
    assert (await client.get(f"/v1/customers/{bystander}/segmentation")).status_code == 200
