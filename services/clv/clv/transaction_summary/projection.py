"""Folds interaction events into per-purchase rows and per-customer summaries, in event order, set-based.

A batch is cut into runs of consecutive events of one kind; each run is one fixed-shape `unnest` statement
(identity events — merge, unmerge — are rare and applied one statement each, so chains A→B→C stay right).
At the end, the summaries of every customer the batch touched are recomputed from the purchase rows, so
refunds, cancellations, merges, unmerges and erasures all land through the same two statements.
"""

import itertools
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import (
    CustomerErased, CustomerMerged, CustomerUnmerged, FeedbackRecorded, PurchaseRecorded, PurchaseRefunded,
)
from shared.contracts.redaction import redact_event_data, tokenizer
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox, forget_subjects

from clv.scoring.service import score_customers
from clv.settings import ClvSettings
from clv.tables import messaging

# A merged-away id's events are keyed by that id, the merge by the survivor: they travel on different
# partitions, so a purchase may arrive after its customer was merged. It then goes to the survivor.
INSERT_PURCHASES = sa.text("""
INSERT INTO clv.purchase (purchase_id, customer_id, currency, amount, occurred_at)
SELECT b.purchase_id, coalesce(a.survivor_id, b.customer_id), b.currency, b.amount, b.occurred_at
FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:currencies AS text[]),
            CAST(:amounts AS numeric[]), CAST(:occurred AS timestamptz[]))
     AS b(purchase_id, customer_id, currency, amount, occurred_at)
LEFT JOIN clv.customer_alias a ON a.merged_id = b.customer_id
ON CONFLICT (purchase_id) DO NOTHING
RETURNING customer_id
""")

INSERT_REFUNDS = sa.text("""
INSERT INTO clv.refund (refund_id, purchase_id, amount, cancelled, occurred_at)
SELECT * FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:amounts AS numeric[]),
                     CAST(:cancelled AS boolean[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (refund_id) DO NOTHING
""")

INSERT_FEEDBACK = sa.text("""
INSERT INTO clv.feedback (feedback_id, customer_id, proposition_id, perceived_value, expected_value, nps, csat,
                          occurred_at)
SELECT b.feedback_id, coalesce(a.survivor_id, b.customer_id), b.proposition_id, b.perceived, b.expected, b.nps,
       b.csat, b.occurred_at
FROM unnest(CAST(:feedback_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:propositions AS text[]),
            CAST(:perceived AS float8[]), CAST(:expected AS float8[]), CAST(:nps AS int[]),
            CAST(:csat AS int[]), CAST(:occurred AS timestamptz[]))
     AS b(feedback_id, customer_id, proposition_id, perceived, expected, nps, csat, occurred_at)
LEFT JOIN clv.customer_alias a ON a.merged_id = b.customer_id
ON CONFLICT (feedback_id) DO NOTHING
""")

# Everything keyed by the customer id goes; refunds go with their purchases.
ERASE = [sa.text(sql) for sql in [
    "DELETE FROM clv.refund WHERE purchase_id IN "
    "(SELECT purchase_id FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
    "DELETE FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.customer_value WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.customer_alias WHERE merged_id = ANY(CAST(:ids AS uuid[])) OR survivor_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.feedback WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.segment_membership WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.customer_stage WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.delivery WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
]]

MERGE = [sa.text(sql) for sql in [
    "UPDATE clv.purchase SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
    "UPDATE clv.feedback SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
    "UPDATE clv.delivery SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
    # The merged id's own value, memberships and stage end with it: the survivor is re-scored, and the
    # segmentation and lifecycle services re-publish what holds for the survivor.
    "DELETE FROM clv.customer_value WHERE customer_id = :merged",
    "DELETE FROM clv.segment_membership WHERE customer_id = :merged",
    "DELETE FROM clv.customer_stage WHERE customer_id = :merged",
    "UPDATE clv.customer_alias SET survivor_id = :survivor, updated_at = now() WHERE survivor_id = :merged",
    "INSERT INTO clv.customer_alias (merged_id, survivor_id, merge_id) VALUES (:merged, :survivor, :merge_id) "
    "ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id, merge_id = EXCLUDED.merge_id, "
    "updated_at = now()",
]]

UNMERGE = [sa.text(sql) for sql in [
    # The owner (interaction) names the purchases that go back: they do, wherever this copy has them now.
    "UPDATE clv.purchase SET customer_id = :restored, updated_at = now() "
    "WHERE purchase_id = ANY(CAST(:purchase_ids AS uuid[]))",
    "DELETE FROM clv.customer_alias WHERE merge_id = :merge_id OR merged_id = :restored",
]]

# The summary of a customer is a pure function of their purchase rows: recompute it for the touched ones.
DELETE_SUMMARIES = sa.text("DELETE FROM clv.transaction_summary WHERE customer_id = ANY(CAST(:ids AS uuid[]))")
INSERT_SUMMARIES = sa.text("""
INSERT INTO clv.transaction_summary
    (customer_id, currency, purchase_count, total_spend, refunded_total, first_purchase_at, last_purchase_at)
SELECT p.customer_id, p.currency, count(*), sum(p.amount), sum(least(coalesce(r.refunded, 0), p.amount)),
       min(p.occurred_at), max(p.occurred_at)
FROM clv.purchase p
LEFT JOIN (SELECT purchase_id, sum(amount) AS refunded, bool_or(cancelled) AS cancelled FROM clv.refund
           WHERE purchase_id IN (SELECT purchase_id FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[])))
           GROUP BY purchase_id) r USING (purchase_id)
WHERE p.customer_id = ANY(CAST(:ids AS uuid[])) AND NOT coalesce(r.cancelled, false)
GROUP BY p.customer_id, p.currency
""")


async def apply_interaction_events(session: AsyncSession, events: list[ConsumedEvent]) -> set[uuid.UUID]:
    """Folds the batch in; returns the customers whose purchases changed."""
    touched: set[uuid.UUID] = set()
    for kind, run in itertools.groupby(events, key=lambda e: type(e.payload)):
        payloads = [e.payload for e in run]
        if kind is PurchaseRecorded:
            owners = await session.execute(INSERT_PURCHASES, {
                "purchase_ids": [p.purchase_id for p in payloads], "customer_ids": [p.customer_id for p in payloads],
                "currencies": [p.currency for p in payloads], "amounts": [p.amount for p in payloads],
                "occurred": [p.occurred_at for p in payloads],
            })
            touched.update(owners.scalars())
        elif kind is PurchaseRefunded:
            await session.execute(INSERT_REFUNDS, {
                "refund_ids": [p.refund_id for p in payloads], "purchase_ids": [p.purchase_id for p in payloads],
                "amounts": [p.amount for p in payloads], "cancelled": [p.cancelled for p in payloads],
                "occurred": [p.occurred_at for p in payloads],
            })
            # The refund names its purchase: its current owner is whoever the purchase row says.
            owners = await session.execute(sa.text(
                "SELECT DISTINCT customer_id FROM clv.purchase WHERE purchase_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": [p.purchase_id for p in payloads]})
            touched.update(owners.scalars())
        elif kind is FeedbackRecorded:
            await session.execute(INSERT_FEEDBACK, {
                "feedback_ids": [p.feedback_id for p in payloads], "customer_ids": [p.customer_id for p in payloads],
                "propositions": [p.proposition_id for p in payloads],
                "perceived": [p.perceived_value for p in payloads], "expected": [p.expected_value for p in payloads],
                "nps": [p.nps for p in payloads], "csat": [p.csat for p in payloads],
                "occurred": [p.occurred_at for p in payloads],
            })
        elif kind is CustomerErased:
            ids = [p.customer_id for p in payloads]
            for statement in ERASE:
                await session.execute(statement, {"ids": ids})
            token = tokenizer()
            await forget_subjects(session, messaging.outbox, [str(i) for i in ids],
                                  lambda event_type, data: redact_event_data(event_type, data, token))
            touched.update(ids)
        elif kind is CustomerMerged:
            for p in payloads:
                for statement in MERGE:
                    await session.execute(statement, {"survivor": p.survivor_id, "merged": p.merged_id,
                                                      "merge_id": p.merge_id})
                touched.update([p.survivor_id, p.merged_id])
        elif kind is CustomerUnmerged:
            for p in payloads:
                for statement in UNMERGE:
                    await session.execute(statement, {"restored": p.restored_id, "survivor": p.survivor_id,
                                                      "merge_id": p.merge_id, "purchase_ids": p.purchase_ids})
                touched.update([p.survivor_id, p.restored_id])
    if touched:
        ids = list(touched)
        await session.execute(DELETE_SUMMARIES, {"ids": ids})
        await session.execute(INSERT_SUMMARIES, {"ids": ids})
    return touched


def interaction_subscription(outbox: Outbox | None = None, settings: ClvSettings | None = None) -> Subscription:
    """With an outbox, the customers whose purchases changed are also scored from the accepted fit in the same
    transaction (incremental scoring), so their value follows their purchases without a scoring run."""

    async def handler(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        touched = await apply_interaction_events(session, events)
        if touched and outbox is not None and settings is not None:
            await score_customers(session, outbox, settings, list(touched))

    # The inbox name stays "purchases" so the consumer group keeps its committed offsets.
    return Subscription(name="purchases", topics=[INTERACTION_EVENTS], handler=handler,
                        event_types={m.EVENT_TYPE: m for m in [
                            PurchaseRecorded, PurchaseRefunded, CustomerMerged, CustomerUnmerged, CustomerErased,
                            FeedbackRecorded,
                        ]})
