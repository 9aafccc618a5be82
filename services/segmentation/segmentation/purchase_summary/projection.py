"""Folds `purchase.recorded` into `purchase_summary` with one upsert per batch.

Order-independent (counts and sums add, first/last take min/max), so late and out-of-order purchases land
correctly; the inbox guarantees each purchase is added once.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

from segmentation.purchase_summary.models import purchase_summary


async def apply_purchases(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    rows: dict[tuple, dict] = {}
    for e in events:
        p: PurchaseRecorded = e.payload
        key = (p.customer_id, p.currency)
        row = rows.get(key)
        if row is None:
            rows[key] = {"customer_id": p.customer_id, "currency": p.currency, "order_count": 1,
                         "total_spend": p.amount, "first_purchase_at": p.occurred_at, "last_purchase_at": p.occurred_at}
        else:
            row["order_count"] += 1
            row["total_spend"] += p.amount
            row["first_purchase_at"] = min(row["first_purchase_at"], p.occurred_at)
            row["last_purchase_at"] = max(row["last_purchase_at"], p.occurred_at)
    if not rows:
        return
    t = purchase_summary
    stmt = insert(t).values(list(rows.values()))
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[t.c.customer_id, t.c.currency],
        set_={
            "order_count": t.c.order_count + stmt.excluded.order_count,
            "total_spend": t.c.total_spend + stmt.excluded.total_spend,
            "first_purchase_at": sa.func.least(t.c.first_purchase_at, stmt.excluded.first_purchase_at),
            "last_purchase_at": sa.func.greatest(t.c.last_purchase_at, stmt.excluded.last_purchase_at),
            "updated_at": sa.func.now(),
        },
    ))


def purchases_subscription() -> Subscription:
    return Subscription(name="purchases", topics=[INTERACTION_EVENTS],
                        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded}, handler=apply_purchases)
