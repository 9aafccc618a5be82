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
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.identity import pin_legacy_unmerge_sql
from shared.contracts.interaction import CustomerUnmerged, LeadCaptured, PurchaseRecorded, PurchaseRefunded, home
from shared.contracts.ordering import latest_per_key, sql_supersedes
from shared.messaging.inbox import ConsumedEvent

from lifecycle.customers.repository import not_erased_sql

# One fixed-shape statement per table whatever the batch size (`unnest` of arrays): prepared once, where a
# multi-row VALUES insert was compiled again by SQLAlchemy for every batch (a fifth of the consumer's CPU).
# A lead or value of a customer erased before it arrived is dropped (erasure deletes the ones before).
LEADS = sa.text(f"""
INSERT INTO lifecycle.campaign_lead (event_id, home_customer_id, campaign, lead_source, qualified, occurred_at)
SELECT * FROM unnest(CAST(:event_ids AS text[]), CAST(:homes AS uuid[]), CAST(:campaigns AS text[]),
                     CAST(:lead_sources AS text[]), CAST(:qualified AS boolean[]), CAST(:occurred AS timestamptz[]))
     AS l(event_id, home)
WHERE {not_erased_sql("l.home")}
ON CONFLICT DO NOTHING
""")
PURCHASES = sa.text("""
INSERT INTO lifecycle.campaign_purchase (purchase_id, home_customer_id, amount, currency, occurred_at)
SELECT * FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:homes AS uuid[]), CAST(:amounts AS numeric[]),
                     CAST(:currencies AS text[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT DO NOTHING
""")
REFUNDS = sa.text("""
INSERT INTO lifecycle.campaign_refund (refund_id, purchase_id, amount, cancelled)
SELECT * FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:amounts AS numeric[]),
                     CAST(:cancelled AS boolean[]))
ON CONFLICT DO NOTHING
""")

VALUES = sa.text(f"""
INSERT INTO lifecycle.campaign_value AS s (customer_id, currency, clv, as_of, version)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:currencies AS text[]), CAST(:clvs AS numeric[]),
                     CAST(:at AS timestamptz[]), CAST(:versions AS bigint[])) AS v(customer_id)
WHERE {not_erased_sql("v.customer_id")}
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
    leads: dict[str, list] = {k: [] for k in ("event_ids", "homes", "campaigns", "lead_sources", "qualified", "occurred")}
    purchases: dict[str, list] = {k: [] for k in ("purchase_ids", "homes", "amounts", "currencies", "occurred")}
    refunds: dict[str, list] = {k: [] for k in ("refund_ids", "purchase_ids", "amounts", "cancelled")}
    values = []
    for e in events:
        match e.payload:
            case LeadCaptured() as p:
                # A lead names the customer it was captured for: that is its home.
                leads["event_ids"].append(e.envelope.id)
                leads["homes"].append(p.customer_id)
                leads["campaigns"].append(p.campaign)
                leads["lead_sources"].append(p.lead_source)
                leads["qualified"].append(p.qualified)
                leads["occurred"].append(p.occurred_at)
            case PurchaseRecorded() as p:
                purchases["purchase_ids"].append(p.purchase_id)
                purchases["homes"].append(home(p))
                purchases["amounts"].append(p.amount)
                purchases["currencies"].append(p.currency)
                purchases["occurred"].append(p.occurred_at)
            case PurchaseRefunded() as p:
                refunds["refund_ids"].append(p.refund_id)
                refunds["purchase_ids"].append(p.purchase_id)
                refunds["amounts"].append(p.amount)
                refunds["cancelled"].append(p.cancelled)
            case CustomerValueUpdated() as p:
                values.append(p)
    for statement, columns in ((LEADS, leads), (PURCHASES, purchases), (REFUNDS, refunds)):
        if next(iter(columns.values())):
            await session.execute(statement, columns)
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
