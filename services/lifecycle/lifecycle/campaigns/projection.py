"""Consumes interaction's leads, purchases, refunds and identity events and clv's values into the campaign
copies; set-based per batch, idempotent (every row is keyed by its owner's id), merges folded after the inserts."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.interaction import (
    CustomerErased, CustomerMerged, CustomerUnmerged, LeadCaptured, PurchaseRecorded, PurchaseRefunded,
)
from shared.contracts.ordering import latest_per_key, sql_supersedes
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

from lifecycle.campaigns.models import campaign_lead, campaign_purchase, campaign_refund, campaign_value

EVENT_TYPES = {m.EVENT_TYPE: m for m in [LeadCaptured, PurchaseRecorded, PurchaseRefunded, CustomerMerged,
                                         CustomerUnmerged, CustomerErased, CustomerValueUpdated]}

VALUES = sa.text(f"""
INSERT INTO lifecycle.campaign_value AS s (customer_id, currency, clv, as_of, version)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:currencies AS text[]), CAST(:clvs AS numeric[]),
                     CAST(:at AS timestamptz[]), CAST(:versions AS bigint[]))
ON CONFLICT (customer_id, currency) DO UPDATE SET clv = EXCLUDED.clv, as_of = EXCLUDED.as_of,
    version = EXCLUDED.version, updated_at = now()
WHERE {sql_supersedes("version", "as_of")}
""")


async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    leads, purchases, refunds, values = [], [], [], []
    for e in events:
        match e.payload:
            case LeadCaptured() as p:
                leads.append({"event_id": e.envelope.id, "customer_id": p.customer_id, "home_customer_id": p.customer_id,
                              "campaign": p.campaign, "lead_source": p.lead_source, "qualified": p.qualified,
                              "occurred_at": p.occurred_at})
            case PurchaseRecorded() as p:
                purchases.append({"purchase_id": p.purchase_id, "customer_id": p.customer_id, "amount": p.amount,
                                  "currency": p.currency, "occurred_at": p.occurred_at})
            case PurchaseRefunded() as p:
                refunds.append({"refund_id": p.refund_id, "purchase_id": p.purchase_id, "amount": p.amount,
                                "cancelled": p.cancelled})
            case CustomerValueUpdated() as p:
                values.append(p)
    for table, rows in ((campaign_lead, leads), (campaign_purchase, purchases), (campaign_refund, refunds)):
        if rows:
            await session.execute(insert(table).values(rows).on_conflict_do_nothing())
    if values:
        latest = list(latest_per_key(values, lambda p: (p.customer_id, p.currency), lambda p: p.version,
                                     lambda p: p.as_of).values())
        await session.execute(VALUES, {"ids": [p.customer_id for p in latest], "currencies": [p.currency for p in latest],
                                       "clvs": [p.clv for p in latest], "at": [p.as_of for p in latest],
                                       "versions": [p.version for p in latest]})
    # Identity events are rare: one by one, in arrival order.
    for e in events:
        match e.payload:
            case CustomerMerged() as m:
                for table in (campaign_lead, campaign_purchase):
                    await session.execute(sa.update(table).where(table.c.customer_id == m.merged_id)
                                          .values(customer_id=m.survivor_id, updated_at=sa.func.now()))
                # clv values the survivor anew; the merged customer's value no longer stands for anyone.
                await session.execute(sa.delete(campaign_value).where(campaign_value.c.customer_id == m.merged_id))
            case CustomerUnmerged() as u:
                await session.execute(sa.update(campaign_lead).where(
                    campaign_lead.c.customer_id == u.survivor_id, campaign_lead.c.home_customer_id == u.restored_id)
                    .values(customer_id=u.restored_id, updated_at=sa.func.now()))
                if u.purchase_ids:
                    await session.execute(sa.update(campaign_purchase).where(
                        campaign_purchase.c.purchase_id.in_(u.purchase_ids))
                        .values(customer_id=u.restored_id, updated_at=sa.func.now()))
            case CustomerErased() as x:
                # A lead's campaign and source are the partner's free text (they may hold PII): the erased
                # customer's leads go, and with them its attribution. Purchases are anonymous amounts and stay;
                # the customer's value goes, as clv drops it.
                for table in (campaign_lead, campaign_value):
                    await session.execute(sa.delete(table).where(table.c.customer_id == x.customer_id))


def campaigns_subscription() -> Subscription:
    return Subscription(name="campaigns", topics=[INTERACTION_EVENTS, CLV_EVENTS], event_types=EVENT_TYPES,
                        handler=apply)
