"""Moves customers through the lifecycle from `purchase.recorded`: a first purchase means Development.

Only the transitions the foundation needs live here; the versioned rule set comes with the lifecycle issue.
Per batch: lock the customers' rows, decide transitions in order, write the stage, its history and the
`stage.changed` events in the same transaction.
"""

import uuid
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import lifecycle as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.interaction import PurchaseRecorded
from shared.contracts.lifecycle import Stage
from shared.contracts.topics import INTERACTION_EVENTS, LIFECYCLE_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox

from lifecycle.stages.models import customer_stage, stage_history

# Stages a first purchase moves forward; later stages are left to the full rule set.
BEFORE_DEVELOPMENT = {None, Stage.APPROACH, Stage.ACQUISITION}

CLOSE_OPEN_STAGES = sa.text("""
UPDATE lifecycle.stage_history h SET left_at = v.ended, updated_at = now()
FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:ended AS timestamptz[])) AS v(customer_id, ended)
WHERE h.customer_id = v.customer_id AND h.left_at IS NULL
""")

BACKDATE_DEVELOPMENT = sa.text("""
UPDATE lifecycle.stage_history h SET entered_at = v.entered, updated_at = now()
FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:entered AS timestamptz[])) AS v(customer_id, entered)
WHERE h.customer_id = v.customer_id AND h.left_at IS NULL AND h.stage = 'development' AND v.entered < h.entered_at
""")


def purchases_subscription(outbox: Outbox) -> Subscription:
    async def apply_purchases(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        by_customer: dict[uuid.UUID, list[ConsumedEvent]] = defaultdict(list)
        for e in events:
            by_customer[e.payload.customer_id].append(e)
        t = customer_stage
        current = {
            r.customer_id: Stage(r.stage)
            for r in await session.execute(
                sa.select(t.c.customer_id, t.c.stage).where(t.c.customer_id.in_(list(by_customer))).with_for_update()
            )
        }
        rows, history, published = [], [], []
        for customer_id, purchases in by_customer.items():
            first = min(purchases, key=lambda e: e.payload.occurred_at)
            p: PurchaseRecorded = first.payload
            before = current.get(customer_id)
            moves = before in BEFORE_DEVELOPMENT
            rows.append({
                "customer_id": customer_id,
                "stage": Stage.DEVELOPMENT if moves else before,
                "stage_entered_at": p.occurred_at,
                "order_count": len(purchases),
                "total_spend": sum((e.payload.amount for e in purchases), Decimal(0)),
                "last_purchase_at": max(e.payload.occurred_at for e in purchases),
            })
            if moves:
                history.append({"customer_id": customer_id, "stage": Stage.DEVELOPMENT, "entered_at": p.occurred_at,
                                "reason": "first purchase", "trigger_event_id": first.envelope.id})
                published.append(Envelope.wrap(
                    contracts.StageChanged(customer_id=customer_id, from_stage=before, to_stage=Stage.DEVELOPMENT,
                                           changed_at=p.occurred_at, reason="first purchase",
                                           trigger_event_id=first.envelope.id),
                    source=contracts.SOURCE, subject=str(customer_id), correlation_id=first.envelope.correlationid,
                ))
        await _upsert(session, rows)
        moved = [h["customer_id"] for h in history]
        moved_set = set(moved)
        stayed = [r for r in rows if r["customer_id"] not in moved_set and r["stage"] == Stage.DEVELOPMENT]
        if stayed:
            await session.execute(BACKDATE_DEVELOPMENT, {"customer_ids": [r["customer_id"] for r in stayed],
                                                         "entered": [r["stage_entered_at"] for r in stayed]})
        if moved:
            # The stage a customer leaves ends when the next one begins.
            await session.execute(CLOSE_OPEN_STAGES, {"customer_ids": moved, "ended": [h["entered_at"] for h in history]})
            await session.execute(insert(stage_history), history)
        await outbox.add(session, LIFECYCLE_EVENTS, published)

    return Subscription(name="purchases", topics=[INTERACTION_EVENTS],
                        event_types={PurchaseRecorded.EVENT_TYPE: PurchaseRecorded}, handler=apply_purchases)


UPSERT_STAGES = sa.text("""
INSERT INTO lifecycle.customer_stage AS s
    (customer_id, stage, stage_entered_at, order_count, total_spend, last_purchase_at)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:stages AS text[]), CAST(:entered AS timestamptz[]),
                     CAST(:counts AS int[]), CAST(:totals AS numeric[]), CAST(:lasts AS timestamptz[]))
ON CONFLICT (customer_id) DO UPDATE SET
    stage = EXCLUDED.stage,
    stage_entered_at = CASE
        WHEN s.stage <> EXCLUDED.stage THEN EXCLUDED.stage_entered_at
        -- a late purchase older than the first one seen: Development began earlier than we thought
        WHEN s.stage = 'development' THEN least(s.stage_entered_at, EXCLUDED.stage_entered_at)
        ELSE s.stage_entered_at END,
    order_count = s.order_count + EXCLUDED.order_count,
    total_spend = s.total_spend + EXCLUDED.total_spend,
    last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
    updated_at = now()
""")


async def _upsert(session: AsyncSession, rows: list[dict]) -> None:
    await session.execute(UPSERT_STAGES, {
        "customer_ids": [r["customer_id"] for r in rows],
        "stages": [r["stage"].value for r in rows],
        "entered": [r["stage_entered_at"] for r in rows],
        "counts": [r["order_count"] for r in rows],
        "totals": [r["total_spend"] for r in rows],
        "lasts": [r["last_purchase_at"] for r in rows],
    })
