"""Segmentation's and lifecycle's copies of the purchases applied side by side (two replicas of a consumer, each
batch in its own transaction): a batch placing a customer's orders and a batch merging or unmerging that customer,
overlapping. The merge's move must not miss the orders the other batch is inserting at the customer from before
it (clv's copies had the race: tests/services/clv/test_profitability_replicas.py; the proving ground, seed
125238951, then showed segmentation one order short in a merged group).

The interleavings are forced, not timed: the second transaction starts while the first is open, and the first
commits only once the second has finished or waits for a lock.
"""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts import interaction
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.interaction import CustomerMerged, CustomerUnmerged
from shared.db import make_engine
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.outbox import Outbox
from tests.support import wait_until

from lifecycle.stages.projection import facts_subscription
from lifecycle.tables import messaging as lifecycle_messaging
from segmentation.profiles.projection import apply_interaction_events

DAY = datetime(2026, 10, 1, 12, tzinfo=UTC)


def _consumed(payloads: list[Payload]) -> list[ConsumedEvent]:
    return [ConsumedEvent(Envelope.wrap(p, source=interaction.SOURCE, subject=str(p.customer_id)), p, None) for p in payloads]  # type: ignore[arg-type]


def _order(customer: uuid.UUID, amount: str) -> interaction.PurchaseRecorded:
    return interaction.PurchaseRecorded(
        customer_id=customer,
        purchase_id=uuid.uuid4(),
        source="shop",
        order_id=uuid.uuid4().hex[:8],
        amount=Decimal(amount),
        currency="EUR",
        channel="web",
        occurred_at=DAY,
    )


def _shipped(customer: uuid.UUID, _amount: str) -> interaction.CustomEventRecorded:
    return interaction.CustomEventRecorded(
        customer_id=customer, event_id=uuid.uuid4(), source="shop", event_type="order.shipped", schema_version=1, occurred_at=DAY
    )


async def _segmentation(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    await apply_interaction_events(session, events)


_lifecycle = facts_subscription(Outbox(lifecycle_messaging, "lifecycle")).handler

# Each copy: its consumer's handler, where it placed a fact (fact id -> customer), the fact and its id's field.
COPIES = {
    "segmentation": (
        _segmentation,
        "SELECT purchase_id::text AS id, customer_id FROM segmentation.purchase WHERE purchase_id::text = ANY(:ids)",
        _order,
        "purchase_id",
    ),
    # Occurrences of custom event types (rule fields event_count, event_last_at) are placed in the same batches.
    "segmentation custom events": (
        _segmentation,
        "SELECT event_id::text AS id, customer_id FROM segmentation.custom_event WHERE event_id::text = ANY(:ids)",
        _shipped,
        "event_id",
    ),
    "lifecycle": (
        _lifecycle,
        "SELECT data->>'purchase_id' AS id, customer_id FROM lifecycle.customer_fact "
        "WHERE kind = 'purchase' AND data->>'purchase_id' = ANY(:ids)",
        _order,
        "purchase_id",
    ),
}


@pytest.mark.parametrize("first", ["orders", "identity"])
@pytest.mark.parametrize("identity", ["merge", "unmerge"])
@pytest.mark.parametrize("copy", list(COPIES))
async def test_orders_and_a_merge_applied_side_by_side_end_with_the_owner(database_url, copy, first, identity):
    apply, placed_sql, fact, id_field = COPIES[copy]
    survivor, merged, merge_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    merge = CustomerMerged(
        customer_id=survivor,
        merge_id=merge_id,
        survivor_id=survivor,
        merged_id=merged,
        reason="same email",
        merged_at=DAY,
        version=1,
    )
    unmerge = CustomerUnmerged(
        customer_id=survivor, merge_id=merge_id, survivor_id=survivor, restored_id=merged, unmerged_at=DAY, version=2
    )
    orders = [fact(merged, amount) for amount in ("100.00", "90.00", "70.00")]  # home: the merged customer
    engine = make_engine(database_url, pool_size=3)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def batch(payloads: list[Payload]) -> None:
        async with sessions.begin() as session:
            await apply(session, _consumed(payloads))

    try:
        await batch([_order(survivor, "50.00")])
        if identity == "unmerge":
            await batch([merge])
        change, owner = (merge, survivor) if identity == "merge" else (unmerge, merged)
        one, other = (orders, [change]) if first == "orders" else ([change], orders)

        async with sessions() as session:
            await session.begin()
            await apply(session, _consumed(one))
            task = asyncio.create_task(batch(other))  # the other replica's batch, while this one is uncommitted

            async def finished_or_waiting() -> bool:
                async with engine.connect() as conn:
                    waiting = (
                        await conn.execute(
                            sa.text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event_type = 'Lock'"
                            )
                        )
                    ).scalar()
                return task.done() or waiting > 0

            await wait_until(finished_or_waiting, timeout=30, interval=0.05, message="the other batch to run")
            await session.commit()
        await task

        async with engine.connect() as conn:
            placed = {
                r.id: r.customer_id
                for r in await conn.execute(sa.text(placed_sql), {"ids": [str(getattr(o, id_field)) for o in orders]})
            }
        assert placed == {str(getattr(o, id_field)): owner for o in orders}, (
            f"after the {identity}, interaction holds the orders with {owner}"
        )
    finally:
        await engine.dispose()
