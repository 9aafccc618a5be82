"""Folds `purchase.recorded` into `purchase_summary`: aggregated per customer in Python, one upsert per batch.

Order-independent (counts and sums add, first/last take min/max), so late and out-of-order purchases land
correctly; the inbox guarantees each purchase is added once.
"""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

# One statement of fixed shape whatever the batch size (arrays, not VALUES rows), so it is compiled and
# prepared once; a VALUES list of varying length was recompiled on every batch.
UPSERT = sa.text("""
INSERT INTO segmentation.purchase_summary AS s
    (customer_id, currency, order_count, total_spend, first_purchase_at, last_purchase_at)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:currencies AS text[]), CAST(:counts AS int[]),
                     CAST(:totals AS numeric[]), CAST(:firsts AS timestamptz[]), CAST(:lasts AS timestamptz[]))
ON CONFLICT (customer_id, currency) DO UPDATE SET
    order_count = s.order_count + EXCLUDED.order_count,
    total_spend = s.total_spend + EXCLUDED.total_spend,
    first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
    last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
    updated_at = now()
""")


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
    await session.execute(UPSERT, {
        "customer_ids": [r["customer_id"] for r in rows.values()],
        "currencies": [r["currency"] for r in rows.values()],
        "counts": [r["order_count"] for r in rows.values()],
        "totals": [r["total_spend"] for r in rows.values()],
        "firsts": [r["first_purchase_at"] for r in rows.values()],
        "lasts": [r["last_purchase_at"] for r in rows.values()],
    })


def purchases_subscription() -> Subscription:
    return Subscription(name="purchases", topics=[INTERACTION_EVENTS],
                        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded}, handler=apply_purchases)
