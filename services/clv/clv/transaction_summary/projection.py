"""Folds a batch of `purchase.recorded` into `transaction_summary` in one statement.

The batch is aggregated in SQL (unnest … GROUP BY) and upserted; sums and min/max make it independent of
arrival order, and the inbox makes each purchase count once.
"""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

UPSERT = sa.text("""
INSERT INTO clv.transaction_summary AS s
    (customer_id, currency, purchase_count, total_spend, first_purchase_at, last_purchase_at)
SELECT customer_id, currency, count(*), sum(amount), min(occurred_at), max(occurred_at)
FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:currencies AS text[]), CAST(:amounts AS numeric[]),
            CAST(:occurred AS timestamptz[])) AS b(customer_id, currency, amount, occurred_at)
GROUP BY customer_id, currency
ON CONFLICT (customer_id, currency) DO UPDATE SET
    purchase_count = s.purchase_count + EXCLUDED.purchase_count,
    total_spend = s.total_spend + EXCLUDED.total_spend,
    first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
    last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
    updated_at = now()
""")


async def apply_purchases(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    purchases: list[PurchaseRecorded] = [e.payload for e in events]
    await session.execute(UPSERT, {
        "customer_ids": [p.customer_id for p in purchases],
        "currencies": [p.currency for p in purchases],
        "amounts": [p.amount for p in purchases],
        "occurred": [p.occurred_at for p in purchases],
    })


def purchases_subscription() -> Subscription:
    return Subscription(name="purchases", topics=[INTERACTION_EVENTS],
                        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded}, handler=apply_purchases)
