"""Rule fields `sku` and `category` (products bought): read from the purchase's lines, not counted once the order
is cancelled, and kept with the purchase through merges, unmerges and erasure."""

import uuid
from decimal import Decimal

import sqlalchemy as sa

from shared.contracts.interaction import PurchaseLine, PurchaseRecorded
from tests.services.segmentation.helpers import erased, merged, purchase, refund, touch, unmerged
from tests.services.segmentation.test_rule_fact_fields import matched


def bought(customer: uuid.UUID, *lines: tuple[str, str | None]) -> PurchaseRecorded:
    """A purchase whose lines are (sku, category) pairs."""
    return purchase(customer, "10", 1).model_copy(
        update={
            "lines": [PurchaseLine(sku=sku, quantity=1, unit_price=Decimal("5"), category=category) for sku, category in lines]
        }
    )


async def lines_of(feeder, customer: uuid.UUID) -> int:
    async with feeder.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT count(*) FROM segmentation.purchase_line WHERE customer_id = :c OR home_customer_id = :c"),
                {"c": customer},
            )
        ).scalar_one()


async def members(client, segment_id: str) -> set[str]:
    resp = await client.get(f"/v1/segments/{segment_id}/members")
    assert resp.status_code == 200, resp.text
    return {m["customer_id"] for m in resp.json()["items"]}


async def test_sku_and_category_select_who_bought_them(client, feeder):
    a, b, c, d, cancelled, partly = (uuid.uuid4() for _ in range(6))
    pa, pb = bought(a, ("A1", "books"), ("B2", "toys")), bought(b, ("A1", "books"))
    pc, pd = bought(c, ("G7", "garden")), bought(d, ("X9", None))
    p_cancelled, p_partly = bought(cancelled, ("A1", "books")), bought(partly, ("A1", "books"))
    await feeder.apply(
        [
            pa,
            pb,
            pc,
            pd,
            p_cancelled,
            p_partly,
            purchase(uuid.uuid4(), "3", 1),
            refund(cancelled, p_cancelled.purchase_id, "10", cancelled=True),
            refund(partly, p_partly.purchase_id, "4"),
        ]
    )
    assert await matched(client, {"field": "sku", "op": "eq", "value": "A1"}) == {str(a), str(b), str(partly)}
    assert await matched(client, {"field": "sku", "op": "in", "value": ["B2", "X9"]}) == {str(a), str(d)}
    assert await matched(client, {"field": "category", "op": "in", "value": ["toys", "garden"]}) == {str(a), str(c)}
    assert await matched(
        client,
        {"all": [{"field": "category", "op": "eq", "value": "books"}, {"not": {"field": "sku", "op": "eq", "value": "B2"}}]},
    ) == {str(b), str(partly)}

    # A redelivered purchase stores its lines once.
    await feeder.apply([pa])
    assert await lines_of(feeder, a) == 2

    # A saved segment follows a cancellation: the customer leaves when the order is cancelled.
    created = await client.post(
        "/v1/segments", json={"key": "bought-a1", "name": "Bought A1", "rule": {"field": "sku", "op": "eq", "value": "A1"}}
    )
    assert created.status_code == 201, created.text
    segment_id = created.json()["segment_id"]
    assert await members(client, segment_id) == {str(a), str(b), str(partly)}
    await feeder.apply([refund(b, pb.purchase_id, "10", cancelled=True)])
    assert await members(client, segment_id) == {str(a), str(partly)}
    assert await matched(client, {"field": "category", "op": "eq", "value": "books"}) == {str(a), str(partly)}


async def test_bought_fields_refuse_other_operators_and_unknown_fields(client):
    for rule, word in [
        ({"field": "sku", "op": "ne", "value": "A1"}, "sku"),
        ({"field": "category", "op": "gt", "value": 3}, "category"),
        ({"field": "sku", "op": "in", "value": []}, "non-empty list"),
        ({"field": "product", "op": "eq", "value": "A1"}, "unknown field"),
    ]:
        resp = await client.post("/v1/segments/preview", json={"rule": rule})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert word in resp.json()["detail"]


async def test_lines_follow_merge_unmerge_and_erasure(client, feeder):
    survivor, other = uuid.uuid4(), uuid.uuid4()
    p = bought(other, ("A1", "books"))
    await feeder.apply([p, touch(survivor, 1)])
    created = (
        await client.post(
            "/v1/segments", json={"key": "books", "name": "Books", "rule": {"field": "category", "op": "eq", "value": "books"}}
        )
    ).json()
    assert await members(client, created["segment_id"]) == {str(other)}

    merge = merged(survivor, other)
    await feeder.apply([merge])
    assert await matched(client, {"field": "sku", "op": "eq", "value": "A1"}) == {str(survivor)}
    assert await members(client, created["segment_id"]) == {str(survivor)}

    await feeder.apply([unmerged(survivor, other, [p.purchase_id], [], merge.merge_id)])
    assert await matched(client, {"field": "sku", "op": "eq", "value": "A1"}) == {str(other)}
    assert await members(client, created["segment_id"]) == {str(other)}, "the survivor left, the restored one is back"

    await feeder.apply([erased(other)])
    assert await lines_of(feeder, other) == 0
    assert await matched(client, {"field": "sku", "op": "eq", "value": "A1"}) == set()
