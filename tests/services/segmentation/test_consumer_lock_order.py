"""Segmentation's three consumers (interaction, values, stages) write `customer_aggregate` rows of the same
customers side by side, each batch in its own transaction: they must never deadlock (profiles/projection.py,
"Lock order"). PostgreSQL breaks a deadlock only after its deadlock_timeout (a second) and the inbox then retries
the batch: nothing is lost, but the batch waits.

The interleavings are forced, not timed: a third connection holds a lock the interaction batch needs next, so the
batch stops at a known statement while the other consumer's batch runs.
"""

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker

from shared.db import make_engine
from tests.services.segmentation.helpers import consumed, merged, purchase, stage, updated, value
from tests.support import wait_until

from segmentation.profiles.projection import apply_interaction_events, apply_stage_events, apply_value_events

OTHERS = {
    "stages": (apply_stage_events, lambda c: stage(c, "development")),
    "values": (apply_value_events, lambda c: value(c, "120.00", "gold")),
}


async def _waiting(engine, n: int) -> bool:
    async with engine.connect() as conn:
        waits = (
            await conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            )
        ).scalar()
    return waits >= n


@pytest.mark.parametrize("other", list(OTHERS))
async def test_an_interaction_batch_and_a_stage_or_value_batch_on_the_same_customers_both_commit(database_url, other):
    apply_other, event = OTHERS[other]
    a, b = sorted([uuid.uuid4(), uuid.uuid4()])
    engine = make_engine(database_url, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def batch(apply, payloads) -> None:
        async with sessions.begin() as session:
            await apply(session, [consumed(p) for p in payloads])

    try:
        await batch(apply_interaction_events, [purchase(a, "10.00", 1), purchase(b, "20.00", 1)])
        # The interaction batch changes b's attributes and adds an order of a's; it stops where it re-derives the
        # summaries, on a's row held here.
        async with sessions() as holder:
            await holder.begin()
            await holder.execute(
                sa.text("SELECT 1 FROM segmentation.purchase_summary WHERE customer_id = :a FOR UPDATE"), {"a": a}
            )
            interaction_batch = asyncio.create_task(
                batch(apply_interaction_events, [updated(b, tier="vip"), purchase(a, "30.00", 2)])
            )
            await wait_until(lambda: _waiting(engine, 1), timeout=30, interval=0.05, message="the interaction batch")
            # Meanwhile the other consumer's batch names both customers, a first.
            other_batch = asyncio.create_task(batch(apply_other, [event(a), event(b)]))
            await wait_until(lambda: _done_or_waiting(other_batch, engine), timeout=30, interval=0.05, message="the other batch")
            await holder.commit()
        results = await asyncio.gather(interaction_batch, other_batch, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == [], "both batches commit, neither deadlocks"

        async with engine.connect() as conn:
            rows = {
                r.customer_id: r
                for r in await conn.execute(
                    sa.text(
                        "SELECT customer_id, order_count, attributes, stage, value_tier "
                        "FROM segmentation.customer_aggregate WHERE customer_id IN (:a, :b)"
                    ),
                    {"a": a, "b": b},
                )
            }
        assert (rows[a].order_count, rows[b].order_count) == (2, 1)
        assert rows[b].attributes == {"tier": "vip"}
        copied = "stage" if other == "stages" else "value_tier"
        assert {getattr(rows[c], copied) for c in (a, b)} == {"development" if other == "stages" else "gold"}
    finally:
        await engine.dispose()


async def _done_or_waiting(task: asyncio.Task, engine) -> bool:
    return task.done() or await _waiting(engine, 2)


@pytest.mark.parametrize("other", list(OTHERS))
async def test_a_batch_with_a_merge_waits_for_open_stage_and_value_batches(database_url, other):
    """A batch with a merge, unmerge or erasure writes aggregate rows in several passes (attributes, fold,
    re-derivation), so it cannot take them in one order: it runs alone among the three consumers. Here the
    customers are disjoint, so only that rule makes it wait."""
    apply_other, event = OTHERS[other]
    survivor, merged_away, someone_else = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = make_engine(database_url, pool_size=4)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions.begin() as session:
            await apply_interaction_events(session, [consumed(purchase(c, "10.00", 1)) for c in (survivor, merged_away)])

        async def merge_batch() -> None:
            async with sessions.begin() as session:
                await apply_interaction_events(session, [consumed(merged(survivor, merged_away))])

        async with sessions() as open_batch:
            await open_batch.begin()
            await apply_other(open_batch, [consumed(event(someone_else))])
            merging = asyncio.create_task(merge_batch())
            await wait_until(lambda: _done_or_waiting_one(merging, engine), timeout=30, interval=0.05, message="merge")
            assert not merging.done(), "the merge waits while the other batch is open"
            await open_batch.commit()
        await merging
        assert await _order_count(engine, survivor) == 2
    finally:
        await engine.dispose()


async def _done_or_waiting_one(task: asyncio.Task, engine) -> bool:
    return task.done() or await _waiting(engine, 1)


async def _order_count(engine, customer: uuid.UUID) -> int:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT order_count FROM segmentation.customer_aggregate WHERE customer_id = :c"), {"c": customer}
            )
        ).scalar_one()
