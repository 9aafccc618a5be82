"""Interaction's leads, purchases and refunds and clv's values copied for the campaign report.

Part of the facts consumer's batch (`lifecycle/stages/projection.py`), not a consumer of its own: a lead or a
purchase keeps its `home` (shared/contracts/identity.py) and the report places it at `live(home)` through
`lifecycle.merged_customer`, the lookup the facts consumer keeps from the merges it heard of, in the same
transaction. So the campaign copy follows merges and unmerges in any arrival order without a second merge table,
and it can never disagree with the stages about who a fact belongs to. Every row is keyed by its owner's id:
a redelivered event adds nothing.
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.identity import pin_legacy_unmerge_sql
from shared.contracts.interaction import CustomerUnmerged, LeadCaptured, PurchaseRecorded, PurchaseRefunded, home
from shared.contracts.ordering import latest_per_key, sql_supersedes
from shared.messaging.inbox import ConsumedEvent

from lifecycle.campaigns.models import campaign_lead, campaign_purchase, campaign_refund

VALUES = sa.text(f"""
INSERT INTO lifecycle.campaign_value AS s (customer_id, currency, clv, as_of, version)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:currencies AS text[]), CAST(:clvs AS numeric[]),
                     CAST(:at AS timestamptz[]), CAST(:versions AS bigint[]))
ON CONFLICT (customer_id, currency) DO UPDATE SET clv = EXCLUDED.clv, as_of = EXCLUDED.as_of,
    version = EXCLUDED.version, updated_at = now()
WHERE {sql_supersedes("version", "as_of")}
""")

# The undo of a merge from before identity versions moves exactly the purchases it lists (their events named
# the survivor, not their home); versioned undos need nothing here, the homes say it all.
PIN_LEGACY_UNMERGE = sa.text(pin_legacy_unmerge_sql("lifecycle.campaign_purchase", "purchase_id")[0])

# An erased customer's leads go: their campaign and source are the partner's free text and may name it. Its
# chain is what lifecycle.merged_customer still maps to it, so this runs before the stages' erasure drops that.
ERASE = [
    sa.text("""DELETE FROM lifecycle.campaign_lead WHERE home_customer_id = :c OR home_customer_id IN
                      (SELECT merged_id FROM lifecycle.merged_customer WHERE survivor_id = :c)"""),
    # clv drops the erased customer's value; purchases are anonymous amounts and stay (unattributed).
    sa.text("DELETE FROM lifecycle.campaign_value WHERE customer_id = :c"),
]


async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    """Inserts the batch's leads, purchases, refunds and values (identity events: `follow_unmerge`, `erase`)."""
    leads, purchases, refunds, values = [], [], [], []
    for e in events:
        match e.payload:
            case LeadCaptured() as p:
                # A lead names the customer it was captured for: that is its home.
                leads.append(
                    {
                        "event_id": e.envelope.id,
                        "home_customer_id": p.customer_id,
                        "campaign": p.campaign,
                        "lead_source": p.lead_source,
                        "qualified": p.qualified,
                        "occurred_at": p.occurred_at,
                    }
                )
            case PurchaseRecorded() as p:
                purchases.append(
                    {
                        "purchase_id": p.purchase_id,
                        "home_customer_id": home(p),
                        "amount": p.amount,
                        "currency": p.currency,
                        "occurred_at": p.occurred_at,
                    }
                )
            case PurchaseRefunded() as p:
                refunds.append(
                    {"refund_id": p.refund_id, "purchase_id": p.purchase_id, "amount": p.amount, "cancelled": p.cancelled}
                )
            case CustomerValueUpdated() as p:
                values.append(p)
    for table, rows in ((campaign_lead, leads), (campaign_purchase, purchases), (campaign_refund, refunds)):
        if rows:
            await session.execute(insert(table).values(rows).on_conflict_do_nothing())
    if values:
        latest = list(
            latest_per_key(values, lambda p: (p.customer_id, p.currency), lambda p: p.version, lambda p: p.as_of).values()
        )
        await session.execute(
            VALUES,
            {
                "ids": [p.customer_id for p in latest],
                "currencies": [p.currency for p in latest],
                "clvs": [p.clv for p in latest],
                "at": [p.as_of for p in latest],
                "versions": [p.version for p in latest],
            },
        )


async def follow_unmerge(session: AsyncSession, u: CustomerUnmerged) -> None:
    if u.version is None and u.purchase_ids:
        await session.execute(PIN_LEGACY_UNMERGE, {"restored": u.restored_id, "listed": list(u.purchase_ids)})


async def erase(session: AsyncSession, customer_id: uuid.UUID) -> None:
    for statement in ERASE:
        await session.execute(statement, {"c": customer_id})
