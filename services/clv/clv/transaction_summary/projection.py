"""Folds interaction events into per-purchase rows and per-customer summaries, in event order, set-based.

A batch is cut into runs of consecutive events of one kind; each run is one fixed-shape `unnest` statement
(identity events — merge, unmerge — are rare and applied one by one; facts follow live(home) over the merges
in force, shared/contracts/identity.py, so any arrival order of a chain comes out right).
At the end, the summaries of every customer the batch touched are recomputed from the purchase rows, so
refunds, cancellations, merges, unmerges and erasures all land through the same two statements.
"""

import functools
import itertools
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import by_event_type
from shared.contracts.identity import (
    IdentityFollower,
    erase_merges_sql,
    erased_among_sql,
    not_erased_sql,
    pin_legacy_unmerge_sql,
    placement_lock_sql,
    remember_erased_sql,
)
from shared.contracts.interaction import (
    CustomerErased,
    CustomerMerged,
    CustomerUnmerged,
    FeedbackRecorded,
    PurchaseRecorded,
    PurchaseRefunded,
    home,
)
from shared.contracts.redaction import redact_event_data, tokenizer
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox, forget_subjects

from clv.scoring.service import score_customers
from clv.settings import ClvSettings
from clv.tables import messaging

# A fact belongs to its home's live customer (shared/contracts/identity.py): the home itself, or the survivor
# its alias names, whatever order the merge, its undo and the fact arrived in.
# A fact whose home was erased is dropped, in every statement that stores facts (shared/contracts/identity.py).
ERASED = "clv.erased_customer"

INSERT_PURCHASES = sa.text(f"""
INSERT INTO clv.purchase (purchase_id, customer_id, home_customer_id, currency, amount, occurred_at)
SELECT b.purchase_id, coalesce(a.survivor_id, b.home), b.home, b.currency, b.amount, b.occurred_at
FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:homes AS uuid[]), CAST(:currencies AS text[]),
            CAST(:amounts AS numeric[]), CAST(:occurred AS timestamptz[]))
     AS b(purchase_id, home, currency, amount, occurred_at)
LEFT JOIN clv.customer_alias a ON a.merged_id = b.home
WHERE {not_erased_sql(ERASED, "b.home")}
ON CONFLICT (purchase_id) DO NOTHING
RETURNING customer_id
""")

INSERT_REFUNDS = sa.text(f"""
INSERT INTO clv.refund (refund_id, purchase_id, amount, cancelled, occurred_at)
SELECT r.refund_id, r.purchase_id, r.amount, r.cancelled, r.occurred_at
FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:amounts AS numeric[]),
            CAST(:cancelled AS boolean[]), CAST(:occurred AS timestamptz[]), CAST(:homes AS uuid[]))
     AS r(refund_id, purchase_id, amount, cancelled, occurred_at, home)
WHERE {not_erased_sql(ERASED, "r.home")}
ON CONFLICT (refund_id) DO NOTHING
""")

INSERT_FEEDBACK = sa.text(f"""
INSERT INTO clv.feedback (feedback_id, customer_id, home_customer_id, proposition_id, perceived_value, expected_value,
                          nps, csat, occurred_at)
SELECT b.feedback_id, coalesce(a.survivor_id, b.home), b.home, b.proposition_id, b.perceived, b.expected, b.nps,
       b.csat, b.occurred_at
FROM unnest(CAST(:feedback_ids AS uuid[]), CAST(:homes AS uuid[]), CAST(:propositions AS text[]),
            CAST(:perceived AS float8[]), CAST(:expected AS float8[]), CAST(:nps AS int[]),
            CAST(:csat AS int[]), CAST(:occurred AS timestamptz[]))
     AS b(feedback_id, home, proposition_id, perceived, expected, nps, csat, occurred_at)
LEFT JOIN clv.customer_alias a ON a.merged_id = b.home
WHERE {not_erased_sql(ERASED, "b.home")}
ON CONFLICT (feedback_id) DO NOTHING
""")

# Everything keyed by the customer id goes; refunds go with their purchases.
ERASE = [
    sa.text(sql)
    for sql in [
        "DELETE FROM clv.refund WHERE purchase_id IN "
        "(SELECT purchase_id FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
        "DELETE FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.customer_value WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.customer_alias WHERE merged_id = ANY(CAST(:ids AS uuid[])) OR survivor_id = ANY(CAST(:ids AS uuid[]))",
        # Ended, not deleted: profitability reads the same record at its own offset (shared/contracts/identity.py).
        erase_merges_sql("clv.customer_merge"),
        remember_erased_sql(ERASED),
        "DELETE FROM clv.feedback WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.segment_membership WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.customer_stage WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.delivery WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    ]
]

# The copy's merges (shared/contracts/identity.py): every fact belongs to live(home) over the merges in force.
REFRESH_ALIASES = [
    sa.text(sql)
    for sql in [
        "DELETE FROM clv.customer_alias WHERE merged_id = ANY(CAST(:ids AS uuid[]))",
        """INSERT INTO clv.customer_alias (merged_id, survivor_id, merge_id)
       SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[]), CAST(:merge_ids AS uuid[])) AS a(id, live, m)
       WHERE a.id <> a.live""",
    ]
]
# An unmerge lists purchases (feedback it never moved back): (statement, the lists it reads).
PIN_LEGACY_UNMERGE = [
    *[(sa.text(sql), ["purchase_ids"]) for sql in pin_legacy_unmerge_sql("clv.purchase", "purchase_id")],
    *[(sa.text(sql), []) for sql in pin_legacy_unmerge_sql("clv.feedback", "feedback_id")],
]
# Facts whose home is in the chain go to their home's live customer; returns the customers they left.
MOVE_FACTS = [
    sa.text(f"""
    WITH target AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[])) AS a(home, live)),
    old AS (SELECT f.customer_id FROM clv.{table} f JOIN target t ON f.home_customer_id = t.home
            WHERE f.customer_id <> t.live),
    moved AS (UPDATE clv.{table} f SET customer_id = t.live, updated_at = now() FROM target t
              WHERE f.home_customer_id = t.home AND f.customer_id <> t.live)
    SELECT DISTINCT customer_id FROM old""")
    for table in ["purchase", "feedback"]
]
# What a merged-away id holds besides facts: deliveries go to its live customer; its own value, memberships and
# stage end with it (the survivor is re-scored, segmentation and lifecycle re-publish what holds for it).
FOLD = [
    sa.text(sql)
    for sql in [
        "UPDATE clv.delivery SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
        "DELETE FROM clv.customer_value WHERE customer_id = :merged",
        "DELETE FROM clv.segment_membership WHERE customer_id = :merged",
        # Not the merged id's stage: that copy follows lifecycle's versions only. Lifecycle gives a customer an
        # unmerge restores a new stage (a greater version), which may reach clv before this fold (another topic,
        # another consumer): deleted here, the restored customer was left without one. A merged-away id's row is
        # never read (clv reads its live customers).
    ]
]


IDENTITY = IdentityFollower(
    "clv.customer_merge",
    erased_among=sa.text(erased_among_sql(ERASED)),
    refresh_aliases=REFRESH_ALIASES,
    move_facts=MOVE_FACTS,
    fold=FOLD,
    pin_legacy=PIN_LEGACY_UNMERGE,
)


# The summary of a customer is a pure function of their purchase rows: recompute it for the touched ones, in one
# statement (the upsert writes the touched customers' summaries; the delete, which does not see the upsert's
# rows, removes those of the touched customers that no longer have one: no purchase left in that currency).
REFRESH_SUMMARIES = sa.text("""
WITH fresh AS (
    SELECT p.customer_id, p.currency, count(*) AS purchase_count, sum(p.amount) AS total_spend,
           sum(least(coalesce(r.refunded, 0), p.amount)) AS refunded_total, min(p.occurred_at) AS first_purchase_at,
           max(p.occurred_at) AS last_purchase_at
    FROM clv.purchase p
    LEFT JOIN (SELECT purchase_id, sum(amount) AS refunded, bool_or(cancelled) AS cancelled FROM clv.refund
               WHERE purchase_id IN (SELECT purchase_id FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[])))
               GROUP BY purchase_id) r USING (purchase_id)
    WHERE p.customer_id = ANY(CAST(:ids AS uuid[])) AND NOT coalesce(r.cancelled, false)
    GROUP BY p.customer_id, p.currency
), written AS (
    INSERT INTO clv.transaction_summary
        (customer_id, currency, purchase_count, total_spend, refunded_total, first_purchase_at, last_purchase_at)
    SELECT * FROM fresh
    ORDER BY customer_id, currency
    ON CONFLICT (customer_id, currency) DO UPDATE SET
        purchase_count = EXCLUDED.purchase_count, total_spend = EXCLUDED.total_spend,
        refunded_total = EXCLUDED.refunded_total, first_purchase_at = EXCLUDED.first_purchase_at,
        last_purchase_at = EXCLUDED.last_purchase_at, updated_at = now()
)
DELETE FROM clv.transaction_summary t
WHERE t.customer_id = ANY(CAST(:ids AS uuid[]))
  AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.customer_id = t.customer_id AND f.currency = t.currency)
""")


# Replicas apply batches side by side: one with a merge, unmerge or erasure runs alone (shared/contracts/identity.py),
# else a merge's move misses the purchases another replica is inserting at the customer from before it.
PLACEMENT_LOCK = {exclusive: sa.text(placement_lock_sql("clv.purchases", exclusive)) for exclusive in (False, True)}
IDENTITY_TYPES = (CustomerMerged, CustomerUnmerged, CustomerErased)


async def apply_interaction_events(session: AsyncSession, events: list[ConsumedEvent]) -> set[uuid.UUID]:
    """Folds the batch in; returns the customers whose purchases changed."""
    await session.execute(PLACEMENT_LOCK[any(isinstance(e.payload, IDENTITY_TYPES) for e in events)])
    touched: set[uuid.UUID] = set()
    for kind, run in itertools.groupby(events, key=lambda e: type(e.payload)):
        payloads = [e.payload for e in run]
        # Each branch takes its run's payloads as their type (a run holds one type: the isinstance only types them).
        if kind is PurchaseRecorded:
            purchases = [p for p in payloads if isinstance(p, PurchaseRecorded)]
            owners = await session.execute(
                INSERT_PURCHASES,
                {
                    "purchase_ids": [p.purchase_id for p in purchases],
                    "homes": [home(p) for p in purchases],
                    "currencies": [p.currency for p in purchases],
                    "amounts": [p.amount for p in purchases],
                    "occurred": [p.occurred_at for p in purchases],
                },
            )
            touched.update(owners.scalars())
        elif kind is PurchaseRefunded:
            refunds = [p for p in payloads if isinstance(p, PurchaseRefunded)]
            await session.execute(
                INSERT_REFUNDS,
                {
                    "refund_ids": [p.refund_id for p in refunds],
                    "purchase_ids": [p.purchase_id for p in refunds],
                    "amounts": [p.amount for p in refunds],
                    "cancelled": [p.cancelled for p in refunds],
                    "occurred": [p.occurred_at for p in refunds],
                    "homes": [home(p) for p in refunds],
                },
            )
            # The refund names its purchase: its current owner is whoever the purchase row says.
            owners = await session.execute(
                sa.text("SELECT DISTINCT customer_id FROM clv.purchase WHERE purchase_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": [p.purchase_id for p in refunds]},
            )
            touched.update(owners.scalars())
        elif kind is FeedbackRecorded:
            feedback = [p for p in payloads if isinstance(p, FeedbackRecorded)]
            await session.execute(
                INSERT_FEEDBACK,
                {
                    "feedback_ids": [p.feedback_id for p in feedback],
                    "homes": [home(p) for p in feedback],
                    "propositions": [p.proposition_id for p in feedback],
                    "perceived": [p.perceived_value for p in feedback],
                    "expected": [p.expected_value for p in feedback],
                    "nps": [p.nps for p in feedback],
                    "csat": [p.csat for p in feedback],
                    "occurred": [p.occurred_at for p in feedback],
                },
            )
        elif kind is CustomerErased:
            ids = [p.customer_id for p in payloads if isinstance(p, CustomerErased)]
            for statement in ERASE:
                await session.execute(statement, {"ids": ids})
            await forget_subjects(
                session, messaging, [str(i) for i in ids], functools.partial(redact_event_data, token=tokenizer())
            )
            touched.update(ids)
        elif kind in (CustomerMerged, CustomerUnmerged):
            for p in [p for p in payloads if isinstance(p, CustomerMerged | CustomerUnmerged)]:
                touched.update((await IDENTITY.follow(session, p)).touched)
    if touched:
        ids = list(touched)
        await session.execute(REFRESH_SUMMARIES, {"ids": ids})
    return touched


def interaction_subscription(outbox: Outbox | None = None, settings: ClvSettings | None = None) -> Subscription:
    """With an outbox, the customers whose purchases changed are also scored from the accepted fit in the same
    transaction (incremental scoring), so their value follows their purchases without a scoring run."""

    async def handler(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        touched = await apply_interaction_events(session, events)
        if touched and outbox is not None and settings is not None:
            await score_customers(session, outbox, settings, list(touched))

    # Formerly "purchases": its group's offsets and inbox rows carry over (migration 0009).
    return Subscription(
        name="interaction_facts",
        former_names=("purchases",),
        topics=[INTERACTION_EVENTS],
        handler=handler,
        event_types=by_event_type(
            PurchaseRecorded,
            PurchaseRefunded,
            CustomerMerged,
            CustomerUnmerged,
            CustomerErased,
            FeedbackRecorded,
        ),
    )
