"""Rule fields over custom event types (`event_count` in a window, `event_last_at`): read from
`custom_event.recorded` relative to the evaluation's now, idempotent on redelivery, kept with their home through
merges and unmerges, gone with an erasure."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.contracts.interaction import CustomEventRecorded
from tests.services.segmentation.helpers import erased, merged, touch, unmerged
from tests.services.segmentation.test_rule_bought_fields import members
from tests.services.segmentation.test_rule_fact_fields import matched


def occurred(customer: uuid.UUID, event_type: str, days_ago: float, home: uuid.UUID | None = None) -> CustomEventRecorded:
    """An occurrence `days_ago` days before now (negative: in the future)."""
    return CustomEventRecorded(
        customer_id=customer,
        event_id=uuid.uuid4(),
        source="shop-eu",
        event_type=event_type,
        schema_version=1,
        occurred_at=datetime.now(UTC) - timedelta(days=days_ago),
        data={"order_id": "A-1"},
        home_customer_id=home,
    )


def shipped_twice_in(days: int) -> dict:
    return {"field": "event_count", "event_type": "order.shipped", "within_days": days, "op": "gte", "value": 2}


async def held(feeder, customer: uuid.UUID) -> int:
    async with feeder.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT count(*) FROM segmentation.custom_event WHERE customer_id = :c OR home_customer_id = :c"),
                {"c": customer},
            )
        ).scalar_one()


async def test_counts_and_last_occurrence_in_a_window_select_the_right_customers(client, feeder):
    a, b, c, d, e = (uuid.uuid4() for _ in range(5))
    a1, a2 = occurred(a, "order.shipped", 2.5), occurred(a, "order.shipped", 20.5)
    await feeder.apply(
        [
            a1,
            a2,  # twice in 30 days
            occurred(b, "order.shipped", 3.5),
            occurred(b, "order.shipped", 45.5),  # once in 30 days, twice in 60
            occurred(c, "order.returned", 1.5),
            occurred(c, "order.returned", 2.5),  # another type
            occurred(d, "order.shipped", 1.5),
            occurred(d, "order.shipped", -3),  # the second has not happened yet
            touch(e, 1),  # no custom events at all
        ]
    )
    assert await matched(client, shipped_twice_in(30)) == {str(a)}
    assert await matched(client, shipped_twice_in(60)) == {str(a), str(b)}
    shipped = {"field": "event_count", "event_type": "order.shipped"}
    assert await matched(client, {**shipped, "op": "eq", "value": 1}) == {str(d)}
    assert await matched(client, {**shipped, "op": "lt", "value": 1}) == {str(c), str(e)}, "none counts as 0"
    assert await matched(client, {**shipped, "op": "between", "value": [1, 2]}) == {str(a), str(b), str(d)}
    last = {"field": "event_last_at", "event_type": "order.shipped"}
    assert await matched(client, {**last, "op": "within_last_days", "value": 2}) == {str(d)}
    assert await matched(client, {**last, "op": "within_last_days", "value": 3}) == {str(a), str(d)}
    assert await matched(client, {**last, "op": "not_within_last_days", "value": 3}) == {str(b)}
    assert await matched(client, {**last, "op": "is_null"}) == {str(c), str(e)}, "never shipped"
    assert await matched(client, {"field": "event_last_at", "event_type": "order.returned", "op": "is_not_null"}) == {str(c)}

    # A redelivered event is one occurrence.
    await feeder.apply([a1, a2])
    assert await held(feeder, a) == 2
    assert await matched(client, {**shipped, "op": "eq", "value": 2}) == {str(a), str(b)}

    # A saved segment is kept current as events arrive: b's second shipment in 30 days brings it in.
    created = await client.post(
        "/v1/segments", json={"key": "shipped-twice", "name": "Shipped twice in 30 days", "rule": shipped_twice_in(30)}
    )
    assert created.status_code == 201, created.text
    segment_id = created.json()["segment_id"]
    assert await members(client, segment_id) == {str(a)}
    await feeder.apply([occurred(b, "order.shipped", 0.5)])
    assert await members(client, segment_id) == {str(a), str(b)}


async def test_hostile_event_conditions_are_422_with_the_reason(client):
    for rule, word in [
        ({"field": "event_count", "op": "gte", "value": 2}, "needs event_type"),
        ({"field": "event_count", "event_type": "order.shipped", "within_days": -30, "op": "gte", "value": 2}, "within_days"),
        ({"field": "event_count", "event_type": "order.shipped", "within_days": "30", "op": "gte", "value": 2}, "within_days"),
        ({"field": "event_count", "event_type": "order.shipped", "op": ">=", "value": 2}, "does not apply"),
        ({"field": "event_count", "event_type": "'; DROP TABLE x; --", "op": "gte", "value": 2}, "event_type"),
        ({"field": "event_last_at", "event_type": "order.shipped", "op": "within_last_days", "value": 10**9}, "days must be"),
        ({"field": "event_last_at", "event_type": "order.shipped", "count_in_days": 3, "op": "is_null"}, "unknown keys"),
    ]:
        resp = await client.post("/v1/segments/preview", json={"rule": rule})
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert word in resp.json()["detail"], resp.json()["detail"]
        saved = await client.post("/v1/segments", json={"key": "bad", "name": "Bad", "rule": rule})
        assert saved.status_code == 422, saved.text


async def test_occurrences_follow_merge_unmerge_and_erasure(client, feeder):
    survivor, other = uuid.uuid4(), uuid.uuid4()
    await feeder.apply([occurred(survivor, "order.shipped", 5.5), occurred(other, "order.shipped", 6.5), touch(survivor, 1)])
    created = (
        await client.post("/v1/segments", json={"key": "shipped-twice", "name": "Shipped twice", "rule": shipped_twice_in(30)})
    ).json()
    assert await members(client, created["segment_id"]) == set(), "once each"

    # Versioned, as interaction publishes every merge since custom events exist: the undo moves facts by home.
    merge = merged(survivor, other).model_copy(update={"version": 1})
    await feeder.apply([merge])
    assert await matched(client, shipped_twice_in(30)) == {str(survivor)}, "the survivor counts both"
    assert await members(client, created["segment_id"]) == {str(survivor)}
    # Sent through the merged-away customer's identifier after the merge: the survivor's now, home `other`.
    await feeder.apply([occurred(survivor, "order.shipped", 7.5, home=other)])
    shipped = {"field": "event_count", "event_type": "order.shipped", "op": "eq"}
    assert await matched(client, {**shipped, "value": 3}) == {str(survivor)}

    await feeder.apply([unmerged(survivor, other, [], [], merge.merge_id).model_copy(update={"version": 2})])
    assert await matched(client, {**shipped, "value": 1}) == {str(survivor)}
    assert await matched(client, {**shipped, "value": 2}) == {str(other)}, "both of other's home go back with it"
    assert await members(client, created["segment_id"]) == {str(other)}

    await feeder.apply([erased(other)])
    assert await held(feeder, other) == 0
    assert await matched(client, {**shipped, "value": 2}) == set()
    assert await members(client, created["segment_id"]) == set()
