"""Keeps `customer_aggregate` and `purchase_summary` current from interaction, clv and lifecycle events.

Per batch, set-based: raw purchase, refund and touchpoint rows are inserted with fixed-shape `unnest`
statements (idempotent on their ids), then the aggregates of the customers the batch touched are re-derived
from those rows in two statements. Re-deriving (rather than adding deltas) makes refunds that arrive before
their purchase, cancellations, merges and unmerges exact; it reads only the touched customers' rows.

Identity events (merged, unmerged, erased) are applied in their place in the batch, between the set-based
chunks of ordinary events before and after them, so a batch means the same as its events one by one. Erased
ids are remembered: a fact whose home was erased is dropped, and so is a value or stage of an erased customer
that clv or lifecycle published before they applied the erasure (shared/contracts/identity.py, "Erasure").
"""

import functools
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.envelope import by_event_type
from shared.contracts.identity import (
    IdentityFollower,
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
    CustomerUpdated,
    CustomEventRecorded,
    FeedbackRecorded,
    LeadCaptured,
    PurchaseRecorded,
    PurchaseRefunded,
    TouchpointRecorded,
    home,
)
from shared.contracts.lifecycle import STAGE_EVENT_TYPES, StageChanged, StageCleared, stage_of
from shared.contracts.ordering import latest_per_key, sql_supersedes
from shared.contracts.redaction import redact_event_data, tokenizer
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS, LIFECYCLE_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox, forget_subjects

from segmentation.rules.service import refresh_rule_segments
from segmentation.segments.membership import close_customers
from segmentation.tables import messaging

INSERT_PURCHASES = sa.text("""
INSERT INTO segmentation.purchase (purchase_id, customer_id, home_customer_id, currency, amount, occurred_at)
SELECT * FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:currencies AS text[]), CAST(:amounts AS numeric[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (purchase_id) DO NOTHING
""")

# The purchase's lines (rule fields sku and category), with the purchase's customer and home so they move with it.
INSERT_LINES = sa.text("""
INSERT INTO segmentation.purchase_line (purchase_id, line_no, customer_id, home_customer_id, sku, category, quantity)
SELECT * FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:line_nos AS int[]), CAST(:customer_ids AS uuid[]),
                     CAST(:homes AS uuid[]), CAST(:skus AS text[]), CAST(:categories AS text[]),
                     CAST(:quantities AS int[]))
ON CONFLICT (purchase_id, line_no) DO NOTHING
""")

INSERT_REFUNDS = sa.text("""
INSERT INTO segmentation.purchase_refund (refund_id, purchase_id, customer_id, home_customer_id, amount, cancelled,
                                          occurred_at)
SELECT * FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[]),
                     CAST(:homes AS uuid[]), CAST(:amounts AS numeric[]), CAST(:cancelled AS boolean[]),
                     CAST(:occurred AS timestamptz[]))
ON CONFLICT (refund_id) DO NOTHING
""")

# A refund counts for whoever holds the purchase now (it may have moved with a merge).
REFUND_HOLDERS = sa.text("""
SELECT DISTINCT customer_id FROM segmentation.purchase WHERE purchase_id = ANY(CAST(:purchase_ids AS uuid[]))
""")

INSERT_TOUCHPOINTS = sa.text("""
INSERT INTO segmentation.touchpoint (touchpoint_id, customer_id, home_customer_id, channel, occurred_at)
SELECT * FROM unnest(CAST(:touchpoint_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:channels AS text[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (touchpoint_id) DO NOTHING
""")

# Facts for the rule fields channel, partner, campaign, lead_source (see models.customer_fact), placed like
# purchases at live(home) (shared/contracts/identity.py).
INSERT_FACTS = sa.text("""
INSERT INTO segmentation.customer_fact (fact_id, customer_id, home_customer_id, origin_id, kind, value, occurred_at)
SELECT * FROM unnest(CAST(:fact_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:origin_ids AS uuid[]), CAST(:kinds AS text[]), CAST(:values AS text[]),
                     CAST(:occurred AS timestamptz[]))
ON CONFLICT (fact_id) DO NOTHING
""")

INSERT_FEEDBACK = sa.text("""
INSERT INTO segmentation.feedback (feedback_id, customer_id, home_customer_id, nps, csat, occurred_at)
SELECT * FROM unnest(CAST(:feedback_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:nps AS smallint[]), CAST(:csat AS smallint[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (feedback_id) DO NOTHING
""")

# Occurrences of custom event types (rule fields event_count, event_last_at), placed at live(home) like feedback.
INSERT_CUSTOM_EVENTS = sa.text("""
INSERT INTO segmentation.custom_event (event_id, customer_id, home_customer_id, event_type, occurred_at)
SELECT * FROM unnest(CAST(:event_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:event_types AS text[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (event_id) DO NOTHING
""")

FACT_NAMESPACE = uuid.UUID("5e6d0000-0000-4000-8000-00000000fac7")


def _facts(p: Any) -> list[tuple[uuid.UUID, uuid.UUID, str, str]]:
    """(fact_id, origin_id, kind, value) of one event. Ids derive from the event's own ids (a lead has none:
    its content stands for it), so a redelivered event inserts nothing new. `origin_id` is the purchase,
    touchpoint or feedback id (a lead's: its content's id): an unmerge from before identity versions lists
    purchases and touchpoints by it."""
    if isinstance(p, PurchaseRecorded | TouchpointRecorded):
        origin = p.purchase_id if isinstance(p, PurchaseRecorded) else p.touchpoint_id
        pairs: list[tuple[str, str | None]] = [("channel", p.channel), ("partner", p.source)]
    elif isinstance(p, LeadCaptured):
        origin = uuid.uuid5(FACT_NAMESPACE, f"lead|{p.customer_id}|{p.source}|{p.occurred_at.isoformat()}")
        pairs = [("partner", p.source), ("campaign", p.campaign), ("lead_source", p.lead_source)]
    elif isinstance(p, FeedbackRecorded):
        origin = p.feedback_id
        pairs = [("partner", p.source)]
    else:
        return []
    return [(uuid.uuid5(FACT_NAMESPACE, f"{origin}|{kind}"), origin, kind, value) for kind, value in pairs if value]


# Attributes: interaction publishes each customer's whole profile with a version (interaction/customers/
# published.py), kept on the row of the id it names when its version is greater, like the value and stage copies
# (a merged-away id's row is never read; an unmerge restores it as it stands). Events from before versions carry
# changes, merged in while the row holds no version. A null value is an attribute removed: kept (readers take it as
# absent: rules/language.py), since at a merge the merged customer's value must not fill it.
ATTRIBUTES_SET = """
    attributes = CASE
        WHEN EXCLUDED.attributes_version IS NOT NULL THEN CASE
            WHEN s.attributes_version IS NULL OR s.attributes_version < EXCLUDED.attributes_version
            THEN EXCLUDED.attributes ELSE s.attributes END
        WHEN s.attributes_version IS NULL THEN s.attributes || EXCLUDED.attributes
        ELSE s.attributes END,
    attributes_version = greatest(s.attributes_version, EXCLUDED.attributes_version)"""
UPSERT_ATTRIBUTES = sa.text(f"""
INSERT INTO segmentation.customer_aggregate AS s (customer_id, attributes, attributes_version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:attributes AS jsonb[]), CAST(:versions AS bigint[]))
ON CONFLICT (customer_id) DO UPDATE SET {ATTRIBUTES_SET}, updated_at = now()
""")

# Copies of clv's value and lifecycle's stage follow the owner's order whatever order the events arrive in: the
# greatest version wins (shared/contracts/ordering.py), never the newest business time.
#
# Lock order. The three consumers (interaction, values, stages) write `customer_aggregate` rows of overlapping
# customers side by side, each batch in its own transaction. Each batch without a merge, unmerge or erasure writes
# its rows in one statement, in customer id order (UPSERT_VALUES, UPSERT_STAGES, DERIVE_AGGREGATES), before it
# touches any other customer's row (rule memberships come after): two such batches never wait for each other in a
# cycle. A batch with an identity event writes in several passes (attributes, fold, erasure, re-derivation), so it
# runs alone among the three (PLACEMENT_LOCK). Before, an interaction batch wrote attributes in one pass and the
# re-derived aggregates in a later one, and a stage or value batch locking the same customers in between deadlocked
# with it (seen in the embedded demo; PostgreSQL broke it after its one-second deadlock_timeout).
ERASED = "segmentation.erased_customer"

UPSERT_VALUES = sa.text(f"""
INSERT INTO segmentation.customer_aggregate AS s
    (customer_id, clv, clv_currency, value_tier, p_alive, value_as_of, value_version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:clvs AS numeric[]), CAST(:currencies AS text[]),
                     CAST(:tiers AS text[]), CAST(:p_alive AS float8[]), CAST(:as_of AS timestamptz[]),
                     CAST(:versions AS bigint[])) AS v(customer_id)
WHERE {not_erased_sql(ERASED, "v.customer_id")}
ORDER BY v.customer_id
ON CONFLICT (customer_id) DO UPDATE SET
    clv = EXCLUDED.clv, clv_currency = EXCLUDED.clv_currency, value_tier = EXCLUDED.value_tier,
    p_alive = EXCLUDED.p_alive, value_as_of = EXCLUDED.value_as_of, value_version = EXCLUDED.value_version,
    updated_at = now()
WHERE {sql_supersedes("value_version", "value_as_of")}
""")

UPSERT_STAGES = sa.text(f"""
INSERT INTO segmentation.customer_aggregate AS s (customer_id, stage, stage_changed_at, stage_version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:stages AS text[]), CAST(:changed_at AS timestamptz[]),
                     CAST(:versions AS bigint[])) AS v(customer_id)
WHERE {not_erased_sql(ERASED, "v.customer_id")}
ORDER BY v.customer_id
ON CONFLICT (customer_id) DO UPDATE SET stage = EXCLUDED.stage, stage_changed_at = EXCLUDED.stage_changed_at,
    stage_version = EXCLUDED.stage_version, updated_at = now()
WHERE {sql_supersedes("stage_version", "stage_changed_at")}
""")

# Re-derivation for the touched customers: money per currency net of refunds (a cancelled order no longer
# counts), then the customer-level counts and dates.
DELETE_SUMMARIES = sa.text("DELETE FROM segmentation.purchase_summary WHERE customer_id = ANY(CAST(:ids AS uuid[]))")
DERIVE_SUMMARIES = sa.text("""
INSERT INTO segmentation.purchase_summary
    (customer_id, currency, order_count, total_spend, first_purchase_at, last_purchase_at)
SELECT p.customer_id, p.currency, count(*), sum(greatest(p.amount - coalesce(r.refunded, 0), 0)),
       min(p.occurred_at), max(p.occurred_at)
FROM segmentation.purchase p
LEFT JOIN (
    SELECT rf.purchase_id, sum(rf.amount) AS refunded, bool_or(rf.cancelled) AS cancelled
    FROM segmentation.purchase_refund rf
    JOIN segmentation.purchase pp ON pp.purchase_id = rf.purchase_id
    WHERE pp.customer_id = ANY(CAST(:ids AS uuid[]))
    GROUP BY rf.purchase_id
) r ON r.purchase_id = p.purchase_id
WHERE p.customer_id = ANY(CAST(:ids AS uuid[])) AND NOT coalesce(r.cancelled, false)
GROUP BY p.customer_id, p.currency
""")
# The batch's attributes ride along (`:attributes`, '{}' and no version for none): the batch's one write to the rows.
DERIVE_AGGREGATES = sa.text(f"""
INSERT INTO segmentation.customer_aggregate AS s
    (customer_id, attributes, attributes_version, order_count, first_purchase_at, last_purchase_at, touchpoint_count,
     first_touch_at, last_touch_at)
SELECT t.id, t.attributes, t.version, coalesce(ps.n, 0), ps.first_at, ps.last_at, coalesce(tp.n, 0), tp.first_at,
       tp.last_at
FROM unnest(CAST(:ids AS uuid[]), CAST(:attributes AS jsonb[]), CAST(:versions AS bigint[])) AS t(id, attributes, version)
LEFT JOIN (
    SELECT customer_id, sum(order_count) AS n, min(first_purchase_at) AS first_at, max(last_purchase_at) AS last_at
    FROM segmentation.purchase_summary WHERE customer_id = ANY(CAST(:ids AS uuid[])) GROUP BY customer_id
) ps ON ps.customer_id = t.id
LEFT JOIN (
    SELECT customer_id, count(*) AS n, min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM segmentation.touchpoint WHERE customer_id = ANY(CAST(:ids AS uuid[])) GROUP BY customer_id
) tp ON tp.customer_id = t.id
ORDER BY t.id
ON CONFLICT (customer_id) DO UPDATE SET {ATTRIBUTES_SET},
    order_count = EXCLUDED.order_count, first_purchase_at = EXCLUDED.first_purchase_at,
    last_purchase_at = EXCLUDED.last_purchase_at, touchpoint_count = EXCLUDED.touchpoint_count,
    first_touch_at = EXCLUDED.first_touch_at, last_touch_at = EXCLUDED.last_touch_at, updated_at = now()
""")

# The survivor of each merged-away id among `:ids`, and (survivor null) those erased, in one round trip.
RESOLVE_HOMES = sa.text(f"""
SELECT merged_id AS id, survivor_id FROM segmentation.customer_alias WHERE merged_id = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT customer_id, NULL FROM {ERASED} WHERE customer_id = ANY(CAST(:ids AS uuid[]))
""")
REMEMBER_ERASED = sa.text(remember_erased_sql(ERASED))

FACT_TABLES = ["purchase", "purchase_line", "purchase_refund", "touchpoint", "customer_fact", "feedback", "custom_event"]

# The copy's merges (shared/contracts/identity.py): every fact belongs to live(home) over the merges in force.
REFRESH_ALIASES = [
    sa.text(sql)
    for sql in [
        "DELETE FROM segmentation.customer_alias WHERE merged_id = ANY(CAST(:ids AS uuid[]))",
        """INSERT INTO segmentation.customer_alias (merged_id, survivor_id, merge_id)
       SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[]), CAST(:merge_ids AS uuid[])) AS a(id, live, m)
       WHERE a.id <> a.live""",
    ]
]
# (table, the column an unmerge's lists name, which lists): purchase lines and channel/partner facts go with their
# purchases and touchpoints; feedback, leads and custom events were never listed (they stay where they are, as in
# clv's copy).
LISTED = [
    ("purchase", "purchase_id", ["purchase_ids"]),
    ("purchase_line", "purchase_id", ["purchase_ids"]),
    ("purchase_refund", "purchase_id", ["purchase_ids"]),
    ("touchpoint", "touchpoint_id", ["touchpoint_ids"]),
    ("customer_fact", "origin_id", ["purchase_ids", "touchpoint_ids"]),
    ("feedback", "feedback_id", []),
    ("custom_event", "event_id", []),
]
PIN_LEGACY_UNMERGE = [
    (sa.text(sql), lists) for table, column, lists in LISTED for sql in pin_legacy_unmerge_sql(f"segmentation.{table}", column)
]
# Facts whose home is in the chain go to their home's live customer; returns the customers they left.
MOVE_FACTS = [
    sa.text(f"""
    WITH target AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[])) AS a(home, live)),
    old AS (SELECT f.customer_id FROM segmentation.{table} f JOIN target t ON f.home_customer_id = t.home
            WHERE f.customer_id <> t.live),
    moved AS (UPDATE segmentation.{table} f SET customer_id = t.live, updated_at = now() FROM target t
              WHERE f.home_customer_id = t.home AND f.customer_id <> t.live)
    SELECT DISTINCT customer_id FROM old""")
    for table in FACT_TABLES
]

# What a merged-away id holds besides facts goes to its live customer: the survivor keeps its own attributes,
# value and stage; the merged customer's fill the gaps (as interaction fills the profile; the survivor's profile
# interaction publishes after the merge follows on the same partition and replaces the attributes).
FOLD_STATEMENTS = [
    sa.text(sql)
    for sql in [
        """INSERT INTO segmentation.customer_aggregate AS s
           (customer_id, attributes, clv, clv_currency, value_tier, p_alive, value_as_of, value_version, stage,
            stage_changed_at, stage_version)
       SELECT :survivor, attributes, clv, clv_currency, value_tier, p_alive, value_as_of, value_version, stage,
              stage_changed_at, stage_version
       FROM segmentation.customer_aggregate WHERE customer_id = :merged
       ON CONFLICT (customer_id) DO UPDATE SET
           attributes = EXCLUDED.attributes || s.attributes,
           clv = coalesce(s.clv, EXCLUDED.clv), clv_currency = coalesce(s.clv_currency, EXCLUDED.clv_currency),
           value_tier = coalesce(s.value_tier, EXCLUDED.value_tier), p_alive = coalesce(s.p_alive, EXCLUDED.p_alive),
           value_as_of = coalesce(s.value_as_of, EXCLUDED.value_as_of),
           value_version = CASE WHEN s.clv IS NULL THEN EXCLUDED.value_version ELSE s.value_version END,
           stage = coalesce(s.stage, EXCLUDED.stage),
           stage_changed_at = coalesce(s.stage_changed_at, EXCLUDED.stage_changed_at),
           stage_version = CASE WHEN s.stage IS NULL THEN EXCLUDED.stage_version ELSE s.stage_version END,
           updated_at = now()""",
        # The merged id's facts are now the survivor's. Its copies of clv's value, lifecycle's stage and
        # interaction's profile stay: they follow their owners' versions only. Deleted here, the new stage
        # lifecycle gives a customer an unmerge restores (a greater version, on another topic, so possibly applied
        # before this fold) was lost, and the restored customer had none while lifecycle had one; the same for the
        # profile interaction publishes at the unmerge, keyed by the restored id. A merged-away id is never read
        # (reads resolve it to its survivor) nor in a population (runs need orders, rules leave merged-away ids
        # out). A row that holds no copy goes.
        """UPDATE segmentation.customer_aggregate SET order_count = 0, first_purchase_at = NULL,
           last_purchase_at = NULL, touchpoint_count = 0, first_touch_at = NULL, last_touch_at = NULL, updated_at = now()
       WHERE customer_id = :merged AND (stage IS NOT NULL OR clv IS NOT NULL OR attributes_version IS NOT NULL)""",
        """DELETE FROM segmentation.customer_aggregate
       WHERE customer_id = :merged AND stage IS NULL AND clv IS NULL AND attributes_version IS NULL""",
        "DELETE FROM segmentation.purchase_summary WHERE customer_id = :merged",
        # The merged id's memberships end with the merge too, published: `_Batch.apply_identity`.
    ]
]

# Everything keyed by the customer goes (R8); aliases that pointed at it are about the same person.
ERASE_STATEMENTS = [
    sa.text(sql)
    for sql in [
        "DELETE FROM segmentation.purchase_refund WHERE customer_id = :customer OR purchase_id IN "
        "(SELECT purchase_id FROM segmentation.purchase WHERE customer_id = :customer)",
        "DELETE FROM segmentation.purchase_line WHERE customer_id = :customer",
        "DELETE FROM segmentation.purchase WHERE customer_id = :customer",
        "DELETE FROM segmentation.touchpoint WHERE customer_id = :customer",
        "DELETE FROM segmentation.customer_fact WHERE customer_id = :customer",
        "DELETE FROM segmentation.feedback WHERE customer_id = :customer",
        "DELETE FROM segmentation.custom_event WHERE customer_id = :customer",
        "DELETE FROM segmentation.purchase_summary WHERE customer_id = :customer",
        "DELETE FROM segmentation.customer_aggregate WHERE customer_id = :customer",
        # Export files hold member ids: every export of a segment the customer was ever in goes (unfinished ones
        # too; their job stops at its next chunk), before the memberships that say which segments those were.
        """DELETE FROM segmentation.segment_export WHERE segment_id IN (
       SELECT segment_id FROM segmentation.segment_membership WHERE customer_id = :customer)""",
        "DELETE FROM segmentation.segment_membership WHERE customer_id = :customer",
        """DELETE FROM segmentation.run_result WHERE customer_id = :customer
       AND run_id IN (SELECT run_id FROM segmentation.segmentation_run)""",
        "DELETE FROM segmentation.customer_alias WHERE merged_id = :customer OR survivor_id = :customer",
        "DELETE FROM segmentation.customer_merge WHERE merged_id = :customer OR survivor_id = :customer",
    ]
]

IDENTITY_TYPES = (CustomerMerged, CustomerUnmerged, CustomerErased)


IDENTITY = IdentityFollower(
    "segmentation.customer_merge",
    erased_among=sa.text(erased_among_sql(ERASED)),
    refresh_aliases=REFRESH_ALIASES,
    move_facts=MOVE_FACTS,
    fold=FOLD_STATEMENTS,
    pin_legacy=PIN_LEGACY_UNMERGE,
)


class _Batch:
    """The customers a batch touched, and the identity-aware application of its events."""

    def __init__(self, session: AsyncSession, outbox: Outbox | None = None) -> None:
        self.session = session
        self.outbox = outbox  # where a merge publishes the exits of the merged id's memberships
        self.touched: set[uuid.UUID] = set()
        # Attributes not written yet, per row: (attributes, version; None for changes from before versions). They go
        # with the re-derivation (DERIVE_AGGREGATES), or before an identity event, which reads them.
        self.attributes: dict[uuid.UUID, tuple[dict, int | None]] = {}

    async def resolve_homes(self, ids: Iterable[uuid.UUID]) -> tuple[dict[uuid.UUID, uuid.UUID], set[uuid.UUID]]:
        """(the survivor of each merged-away id, the erased ids) among `ids`."""
        ids = list(set(ids))
        if not ids:
            return {}, set()
        rows = (await self.session.execute(RESOLVE_HOMES, {"ids": ids})).all()
        erased = {r.id for r in rows if r.survivor_id is None}
        return {r.id: r.survivor_id for r in rows if r.survivor_id is not None and r.id not in erased}, erased

    async def apply_chunk(self, payloads: list[Any]) -> None:
        alias, erased = await self.resolve_homes([p.customer_id for p in payloads] + [home(p) for p in payloads])
        # A fact whose home was erased arrived after the erasure: dropped (shared/contracts/identity.py, "Erasure").
        payloads = [p for p in payloads if home(p) not in erased]

        def resolve(customer_id: uuid.UUID) -> uuid.UUID:
            return alias.get(customer_id, customer_id)

        purchases = [p for p in payloads if isinstance(p, PurchaseRecorded)]
        refunds = [p for p in payloads if isinstance(p, PurchaseRefunded)]
        touchpoints = [p for p in payloads if isinstance(p, TouchpointRecorded)]
        for p in payloads:
            if isinstance(p, CustomerUpdated):
                self.add_attributes(p, resolve)
        if purchases:
            await self.session.execute(
                INSERT_PURCHASES,
                {
                    "purchase_ids": [p.purchase_id for p in purchases],
                    "customer_ids": [resolve(home(p)) for p in purchases],
                    "homes": [home(p) for p in purchases],
                    "currencies": [p.currency for p in purchases],
                    "amounts": [p.amount for p in purchases],
                    "occurred": [p.occurred_at for p in purchases],
                },
            )
            self.touched.update(resolve(home(p)) for p in purchases)
            lines = [(p, n, line) for p in purchases for n, line in enumerate(p.lines)]
            if lines:
                await self.session.execute(
                    INSERT_LINES,
                    {
                        "purchase_ids": [p.purchase_id for p, _, _ in lines],
                        "line_nos": [n for _, n, _ in lines],
                        "customer_ids": [resolve(home(p)) for p, _, _ in lines],
                        "homes": [home(p) for p, _, _ in lines],
                        "skus": [li.sku for _, _, li in lines],
                        "categories": [li.category for _, _, li in lines],
                        "quantities": [li.quantity for _, _, li in lines],
                    },
                )
        if refunds:
            await self.session.execute(
                INSERT_REFUNDS,
                {
                    "refund_ids": [p.refund_id for p in refunds],
                    "purchase_ids": [p.purchase_id for p in refunds],
                    "customer_ids": [resolve(home(p)) for p in refunds],
                    "homes": [home(p) for p in refunds],
                    "amounts": [p.amount for p in refunds],
                    "cancelled": [p.cancelled for p in refunds],
                    "occurred": [p.occurred_at for p in refunds],
                },
            )
            holders = await self.session.execute(REFUND_HOLDERS, {"purchase_ids": [p.purchase_id for p in refunds]})
            self.touched.update(r.customer_id for r in holders)
            self.touched.update(resolve(home(p)) for p in refunds)
        if touchpoints:
            await self.session.execute(
                INSERT_TOUCHPOINTS,
                {
                    "touchpoint_ids": [p.touchpoint_id for p in touchpoints],
                    "customer_ids": [resolve(home(p)) for p in touchpoints],
                    "homes": [home(p) for p in touchpoints],
                    "channels": [p.channel for p in touchpoints],
                    "occurred": [p.occurred_at for p in touchpoints],
                },
            )
            self.touched.update(resolve(home(p)) for p in touchpoints)
        facts = [(f, home(p), p.occurred_at) for p in payloads for f in _facts(p)]
        if facts:
            await self.session.execute(
                INSERT_FACTS,
                {
                    "fact_ids": [f[0] for f, _, _ in facts],
                    "customer_ids": [resolve(h) for _, h, _ in facts],
                    "homes": [h for _, h, _ in facts],
                    "origin_ids": [f[1] for f, _, _ in facts],
                    "kinds": [f[2] for f, _, _ in facts],
                    "values": [f[3] for f, _, _ in facts],
                    "occurred": [t for _, _, t in facts],
                },
            )
            self.touched.update(resolve(h) for _, h, _ in facts)
        feedback = [p for p in payloads if isinstance(p, FeedbackRecorded)]
        if feedback:
            await self.session.execute(
                INSERT_FEEDBACK,
                {
                    "feedback_ids": [p.feedback_id for p in feedback],
                    "customer_ids": [resolve(home(p)) for p in feedback],
                    "homes": [home(p) for p in feedback],
                    "nps": [p.nps for p in feedback],
                    "csat": [p.csat for p in feedback],
                    "occurred": [p.occurred_at for p in feedback],
                },
            )
            self.touched.update(resolve(home(p)) for p in feedback)
        custom = [p for p in payloads if isinstance(p, CustomEventRecorded)]
        if custom:
            await self.session.execute(
                INSERT_CUSTOM_EVENTS,
                {
                    "event_ids": [p.event_id for p in custom],
                    "customer_ids": [resolve(home(p)) for p in custom],
                    "homes": [home(p) for p in custom],
                    "event_types": [p.event_type for p in custom],
                    "occurred": [p.occurred_at for p in custom],
                },
            )
            self.touched.update(resolve(home(p)) for p in custom)

    def add_attributes(self, p: CustomerUpdated, resolve: Callable[[uuid.UUID], uuid.UUID]) -> None:
        """A profile stays with the id interaction names (its rows follow interaction's order only, see
        ATTRIBUTES_SET); changes from before versions go to the live customer, as they always did."""
        if p.version is not None:
            held = self.attributes.get(p.customer_id)
            if held is None or held[1] is None or held[1] < p.version:
                self.attributes[p.customer_id] = (p.attributes, p.version)
            if resolve(p.customer_id) == p.customer_id:
                self.touched.add(p.customer_id)
        else:
            live = resolve(p.customer_id)
            held = self.attributes.get(live, ({}, None))
            if held[1] is None:  # a versioned profile in the batch is newer than any change from before versions
                self.attributes[live] = ({**held[0], **p.attributes}, None)
            self.touched.add(live)

    def attribute_columns(self, ids: list[uuid.UUID]) -> dict[str, list]:
        held = [self.attributes.get(i, ({}, None)) for i in ids]
        return {"attributes": [json.dumps(a) for a, _ in held], "versions": [v for _, v in held]}

    async def write_attributes(self) -> None:
        if self.attributes:
            ids = sorted(self.attributes)
            await self.session.execute(UPSERT_ATTRIBUTES, {"customer_ids": ids, **self.attribute_columns(ids)})
            self.attributes = {}

    async def apply_identity(self, p: Any) -> None:
        await self.write_attributes()  # the fold and the erasure read and delete them
        if isinstance(p, (CustomerMerged, CustomerUnmerged)):
            followed = await IDENTITY.follow(self.session, p)
            # Every id the chain holds merged away: its memberships end now, each exit published (the copies follow them).
            at = p.merged_at if isinstance(p, CustomerMerged) else p.unmerged_at
            await close_customers(self.session, self.outbox, sorted(followed.merged), at)
            # Merged-away ids hold nothing any more (their rows were folded into their live customers).
            self.touched = (self.touched | followed.touched) - followed.merged
        elif isinstance(p, CustomerErased):
            for statement in ERASE_STATEMENTS:
                await self.session.execute(statement, {"customer": p.customer_id})
            await self.session.execute(REMEMBER_ERASED, {"ids": [p.customer_id]})
            token = tokenizer()
            await forget_subjects(
                self.session,
                messaging,
                [str(p.customer_id)],
                lambda event_type, data: redact_event_data(event_type, data, token),
            )
            self.touched.discard(p.customer_id)

    async def rederive(self) -> None:
        if not self.touched and not self.attributes:
            return
        ids = list(self.touched)
        if ids:
            await self.session.execute(DELETE_SUMMARIES, {"ids": ids})
            await self.session.execute(DERIVE_SUMMARIES, {"ids": ids})
        # A merged-away id's profile is written with it: its (zero) facts re-derive to what the fold left.
        ids = sorted(self.touched | set(self.attributes))
        await self.session.execute(DERIVE_AGGREGATES, {"ids": ids, **self.attribute_columns(ids)})
        self.attributes = {}


# Replicas apply batches side by side: one with a merge, unmerge or erasure runs alone (shared/contracts/identity.py),
# else a merge's move misses the purchases another replica is inserting at the customer from before it. Value and
# stage batches take it shared too: an identity batch writes aggregate rows in several passes (see "Lock order").
PLACEMENT_LOCK = {exclusive: sa.text(placement_lock_sql("segmentation.interaction", exclusive)) for exclusive in (False, True)}


async def apply_interaction_events(
    session: AsyncSession, events: list[ConsumedEvent], outbox: Outbox | None = None
) -> set[uuid.UUID]:
    """Apply a batch of interaction events; returns the customers whose aggregates changed. `outbox`: where the
    memberships a merge ends are announced."""
    await session.execute(PLACEMENT_LOCK[any(isinstance(e.payload, IDENTITY_TYPES) for e in events)])
    batch = _Batch(session, outbox)
    chunk: list[Any] = []
    for e in events:
        if isinstance(e.payload, IDENTITY_TYPES):
            if chunk:
                await batch.apply_chunk(chunk)
                chunk = []
            await batch.apply_identity(e.payload)
        else:
            chunk.append(e.payload)
    if chunk:
        await batch.apply_chunk(chunk)
    await batch.rederive()
    return batch.touched


async def apply_value_events(session: AsyncSession, events: list[ConsumedEvent]) -> set[uuid.UUID]:
    latest = latest_per_key(  # the subscription delivers no other type: the filter only says so to mypy
        (e.payload for e in events if isinstance(e.payload, CustomerValueUpdated)),
        lambda p: p.customer_id,
        lambda p: p.version,
        lambda p: p.as_of,
    )
    await session.execute(PLACEMENT_LOCK[False])
    if latest:
        await session.execute(
            UPSERT_VALUES,
            {
                "customer_ids": list(latest),
                "clvs": [p.clv for p in latest.values()],
                "currencies": [p.currency for p in latest.values()],
                "tiers": [p.tier for p in latest.values()],
                "p_alive": [p.probability_alive for p in latest.values()],
                "as_of": [p.as_of for p in latest.values()],
                "versions": [p.version for p in latest.values()],
            },
        )
    return await _live(session, latest)


async def apply_stage_events(session: AsyncSession, events: list[ConsumedEvent]) -> set[uuid.UUID]:
    latest = latest_per_key(  # as above; a stage.cleared leaves the customer without a stage, in the same order
        (e.payload for e in events if isinstance(e.payload, StageChanged | StageCleared)),
        lambda p: p.customer_id,
        lambda p: p.version,
        lambda p: p.changed_at,
    )
    await session.execute(PLACEMENT_LOCK[False])
    if latest:
        await session.execute(
            UPSERT_STAGES,
            {
                "customer_ids": list(latest),
                "stages": [stage_of(p) for p in latest.values()],
                "changed_at": [p.changed_at for p in latest.values()],
                "versions": [p.version for p in latest.values()],
            },
        )
    return await _live(session, latest)


async def _live(session: AsyncSession, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The ids neither merged away nor erased as far as this copy knows (the ones whose rule segments to refresh).

    A copy of clv's value or lifecycle's stage stays with the id its owner names, merged away here or not:
    the owner publishes for its own live customers, and the identity events travel on another topic. Filed
    under this copy's survivor instead, a stage lifecycle published for a restored customer before this copy
    applied the unmerge overwrote the survivor's and left the restored customer without one (proving ground).
    A merged-away id's row is never read (reads resolve the alias first)."""
    ids = set(ids)
    alias, erased = await _Batch(session).resolve_homes(ids)
    return ids - set(alias) - erased


def _with_rules(apply, outbox: Outbox | None, reporting_currency: str):
    """Rule segments are kept current as events arrive: re-evaluated for the customers the batch touched."""

    async def handler(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        touched = await apply(session, events)
        if touched and outbox is not None:
            await refresh_rule_segments(session, outbox, reporting_currency, customer_ids=list(touched))

    return handler


INTERACTION_TYPES = by_event_type(
    PurchaseRecorded,
    PurchaseRefunded,
    TouchpointRecorded,
    CustomerUpdated,
    CustomerMerged,
    CustomerUnmerged,
    CustomerErased,
    FeedbackRecorded,
    LeadCaptured,
    CustomEventRecorded,
)


def interaction_subscription(outbox: Outbox | None = None, reporting_currency: str = "EUR") -> Subscription:
    # Formerly "purchases": its group's offsets and inbox rows carry over (migration 0011).
    return Subscription(
        name="interaction_facts",
        former_names=("purchases",),
        topics=[INTERACTION_EVENTS],
        event_types=INTERACTION_TYPES,
        handler=_with_rules(functools.partial(apply_interaction_events, outbox=outbox), outbox, reporting_currency),
    )


def value_subscription(outbox: Outbox | None = None, reporting_currency: str = "EUR") -> Subscription:
    return Subscription(
        name="values",
        topics=[CLV_EVENTS],
        event_types={CustomerValueUpdated.EVENT_TYPE: CustomerValueUpdated},
        handler=_with_rules(apply_value_events, outbox, reporting_currency),
    )


def stage_subscription(outbox: Outbox | None = None, reporting_currency: str = "EUR") -> Subscription:
    return Subscription(
        name="stages",
        topics=[LIFECYCLE_EVENTS],
        event_types=dict(STAGE_EVENT_TYPES),
        handler=_with_rules(apply_stage_events, outbox, reporting_currency),
    )
