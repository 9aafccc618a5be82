"""clv's copies of the purchases applied side by side with other transactions: two replicas of a consumer, each batch
in its own transaction (a batch placing purchases of a customer and a batch merging or unmerging that customer,
overlapping), and the transaction summary's consumer, which keeps clv's record of merges with it.

Found by the proving ground (seed 1600665883): a group of three merged customers held 9 EUR orders in
interaction and 6 in profitability. The merge's move of the chain's orders did not see the orders another
replica was inserting (uncommitted), and those had been placed at the live customer from before the merge; both
committed and the orders stayed with the merged-away id (invisible: reading it answers as the survivor).

The transaction summary's copy (clv's value) had the same race: the proving ground showed it once
profitability's was fixed (seed 125238951: a group of three, one EUR order short in value). Its re-derived
summary row often made the two transactions collide on its key (the loser retried, seeing the merge), which
hid it most of the time.

The interleavings are forced, not timed: the second transaction is started while the first is open, and the
first commits only once the second has finished or waits for a lock.
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
from tests.support import wait_until

from clv.profitability.projection import apply_events
from clv.transaction_summary.projection import apply_interaction_events

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


async def _apply(sessions: async_sessionmaker[AsyncSession], payloads: list[Payload], apply=apply_events) -> None:
    async with sessions.begin() as session:
        await apply(session, _consumed(payloads))


# clv's two copies of the purchases: (their consumer's handler, the table that places each purchase).
COPIES = {"profitability": (apply_events, "clv.profit_order"), "transaction_summary": (apply_interaction_events, "clv.purchase")}


@pytest.mark.parametrize("first", ["orders", "identity"])
@pytest.mark.parametrize("identity", ["merge", "unmerge"])
@pytest.mark.parametrize("copy", list(COPIES))
async def test_orders_and_a_merge_applied_side_by_side_end_with_the_owner(database_url, copy, first, identity):
    apply, table = COPIES[copy]
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
    # Three orders through the merged customer's identifier (their home), in one batch as after a restart.
    orders = [_order(merged, amount) for amount in ("100.00", "90.00", "70.00")]
    engine = make_engine(database_url, pool_size=6)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        # The merged customer has no earlier orders: the summary's re-derived row then cannot collide between the
        # two batches (which would make one fail and be retried, hiding the race).
        await _apply(sessions, [_order(survivor, "50.00")], apply)
        if identity == "unmerge":
            await _apply(sessions, [merge], apply)
        change, owner = (merge, survivor) if identity == "merge" else (unmerge, merged)
        one, other = (orders, [change]) if first == "orders" else ([change], orders)

        async with sessions() as session:
            await session.begin()
            await apply(session, _consumed(one))
            # The other replica's batch, while this one is uncommitted.
            task = asyncio.create_task(_apply(sessions, other, apply))

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
                r.purchase_id: r.customer_id
                for r in await conn.execute(
                    sa.text(f"SELECT purchase_id, customer_id FROM {table} WHERE purchase_id = ANY(:ids)"),
                    {"ids": [o.purchase_id for o in orders]},
                )
            }
        assert placed == {o.purchase_id: owner for o in orders}, (
            f"after the {identity}, interaction holds the orders with {owner}"
        )
    finally:
        await engine.dispose()


async def test_an_erasure_does_not_bring_back_an_undone_merge_for_the_other_consumer(database_url):
    """clv's two consumers of interaction's events (profitability and the transaction summary) keep one record of
    merges, each at its own offset. The erasure of a merge's survivor once deleted the merge from it: the consumer
    behind then recorded the merge again, in force, and the one ahead placed the restored customer's next orders
    at the erased survivor, where they stayed (the one ahead had already applied the undo)."""
    erased, restored, merge_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    merge = CustomerMerged(
        customer_id=erased,
        merge_id=merge_id,
        survivor_id=erased,
        merged_id=restored,
        reason="same email",
        merged_at=DAY,
        version=1,
    )
    unmerge = CustomerUnmerged(
        customer_id=erased, merge_id=merge_id, survivor_id=erased, restored_id=restored, unmerged_at=DAY, version=2
    )
    erasure = interaction.CustomerErased(customer_id=erased, erased_at=DAY)
    later = _order(restored, "40.00")  # after the undo: the restored customer's own
    engine = make_engine(database_url, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def summary(payloads: list[Payload]) -> None:
        async with sessions.begin() as session:
            await apply_interaction_events(session, _consumed(payloads))

    try:
        await _apply(sessions, [_order(restored, "10.00"), merge, unmerge, erasure])  # profitability, ahead
        await summary([_order(restored, "10.00"), merge])  # the summary, behind
        await _apply(sessions, [later])
        await summary([unmerge, erasure])
        async with engine.connect() as conn:
            holder = (
                await conn.execute(
                    sa.text("SELECT customer_id FROM clv.profit_order WHERE purchase_id = :id"), {"id": later.purchase_id}
                )
            ).scalar()
        assert holder == restored, "the merge was undone before the erasure: the order is the restored customer's"
    finally:
        await engine.dispose()
