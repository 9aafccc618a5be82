"""The computed traits of customers: recomputed from all their stored rows, or extended by a batch's new rows.

`recompute_traits` reads each customer's whole history: order-independent by construction (each trait is a
function of the stored facts, not of arrival order), so late events, duplicates, merges and unmerges all leave
the traits it gives. Its cost grows with the history, so ingestion calls it only where history changed (a
merge moved rows, a refund or cancellation changed a purchase) and otherwise `extend_traits`, which reads only
the batch's new rows and folds them into the stored traits: the same result, whatever the history's length
(tests/services/interaction/test_traits_properties.py checks both against an independent computation and
against each other). Each trait is a count, a sum, a newest or a union, so new rows extend it exactly; the
preferred channel needs the count per channel, kept in `customer.channel_use`. Definitions are in
docs/interaction.md.
"""

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


def _purchases(where: str) -> str:
    """The customers' purchases (those `where` says) with what refunds and cancellations took off each."""
    return f"""
    SELECT p.customer_id, p.currency, p.amount, p.occurred_at, p.channel,
           coalesce(x.cancelled, false) AS cancelled,
           CASE WHEN x.full_refund THEN p.amount ELSE least(p.amount, coalesce(x.refunded, 0)) END AS refunded
    FROM interaction.purchase p JOIN t ON p.customer_id = t.id
    LEFT JOIN LATERAL (
        SELECT bool_or(a.cancelled) AS cancelled, sum(a.amount) AS refunded,
               bool_or(a.amount IS NULL AND NOT a.cancelled) AS full_refund
        FROM interaction.purchase_adjustment a WHERE a.source = p.source AND a.order_id = p.order_id
    ) x ON true
    {where}"""


def _latest_score(kind: str) -> str:
    """Per customer, the `kind` score of the latest feedback in `ac` that has one (ties: partner, then event id,
    in byte order)."""
    return f"""
    SELECT DISTINCT ON (customer_id) customer_id, CAST(data->>'{kind}' AS int) AS score, occurred_at FROM ac
    WHERE type = 'feedback.submitted' AND data ? '{kind}'
    ORDER BY customer_id, occurred_at DESC, source COLLATE "C" DESC, event_id COLLATE "C" DESC"""


# Fragments both statements use, over their `p` (purchases) and `ac` (timeline rows): purchases not cancelled
# per customer; uses per customer and channel (touchpoints and purchases not cancelled); those uses as
# `customer.channel_use` keeps them, {channel: {"n": uses, "at": latest use}}.
_BOUGHT = """
    SELECT customer_id, count(*) AS n, max(occurred_at) AS last_at FROM p WHERE NOT cancelled GROUP BY customer_id"""
_CHANNEL_USES = """
    SELECT customer_id, channel, count(*) AS n, max(occurred_at) AS last_at FROM (
        SELECT customer_id, channel, occurred_at FROM ac WHERE type = 'interaction.logged'
        UNION ALL
        SELECT customer_id, channel, occurred_at FROM p WHERE NOT cancelled
    ) u GROUP BY customer_id, channel"""
# Each customer of the statement with what its CTEs say about it (nothing, for most of them, in most batches).
_PER_CUSTOMER = """FROM t
    LEFT JOIN seen ON seen.customer_id = t.id
    LEFT JOIN bought ON bought.customer_id = t.id
    LEFT JOIN preferred ON preferred.customer_id = t.id
    LEFT JOIN uses ON uses.customer_id = t.id
    LEFT JOIN touch ON touch.customer_id = t.id
    LEFT JOIN nps ON nps.customer_id = t.id
    LEFT JOIN csat ON csat.customer_id = t.id"""
_USES_AS_JSON = """
    SELECT customer_id, jsonb_object_agg(channel, jsonb_build_object('n', n, 'at', last_at)) AS per_channel
    FROM channel_use GROUP BY customer_id"""

RECOMPUTE = sa.text(f"""
WITH t AS (SELECT DISTINCT unnest(CAST(:ids AS uuid[])) AS id),
p AS ({_purchases("")}),
totals AS (
    SELECT customer_id, currency, count(*) AS n, sum(amount - refunded) AS total,
           round(sum(amount - refunded) / count(*), 4) AS average, sum(refunded) AS refunded, max(occurred_at) AS last_at
    FROM p WHERE NOT cancelled GROUP BY customer_id, currency
),
-- Data-modifying WITHs run whether or not they are referenced. Upsert rather than delete and re-insert:
-- a row whose figures did not change is not rewritten; rows of currencies no longer bought are deleted.
-- The two touch disjoint rows (a statement may not modify one row twice).
spend AS (
    INSERT INTO interaction.customer_spend AS s (customer_id, currency, purchase_count, total_spend, average_spend,
                                                 refunded, last_purchase_at)
    SELECT customer_id, currency, n, total, average, refunded, last_at FROM totals
    ON CONFLICT (customer_id, currency) DO UPDATE SET
        purchase_count = EXCLUDED.purchase_count, total_spend = EXCLUDED.total_spend,
        average_spend = EXCLUDED.average_spend, refunded = EXCLUDED.refunded,
        last_purchase_at = EXCLUDED.last_purchase_at, updated_at = now()
    WHERE (s.purchase_count, s.total_spend, s.average_spend, s.refunded, s.last_purchase_at)
          IS DISTINCT FROM (EXCLUDED.purchase_count, EXCLUDED.total_spend, EXCLUDED.average_spend,
                            EXCLUDED.refunded, EXCLUDED.last_purchase_at)
    RETURNING customer_id
),
stale_spend AS (
    DELETE FROM interaction.customer_spend s USING t
    WHERE s.customer_id = t.id
      AND NOT EXISTS (SELECT 1 FROM totals x WHERE x.customer_id = s.customer_id AND x.currency = s.currency)
    RETURNING s.customer_id
),
ac AS (
    SELECT a.customer_id, a.type, a.occurred_at, a.channel, a.source, a.event_id, a.data
    FROM interaction.activity a JOIN t ON a.customer_id = t.id
),
seen AS (
    SELECT customer_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           array_agg(DISTINCT source COLLATE "C" ORDER BY source COLLATE "C") AS partners
    FROM ac GROUP BY customer_id
),
bought AS ({_BOUGHT}),
channel_use AS ({_CHANNEL_USES}),
preferred AS (
    SELECT DISTINCT ON (customer_id) customer_id, channel FROM channel_use
    ORDER BY customer_id, n DESC, last_at DESC, channel COLLATE "C"
),
uses AS ({_USES_AS_JSON}),
channel_use_tp AS (
    SELECT customer_id, channel, max(occurred_at) AS last_at FROM ac WHERE type = 'interaction.logged'
    GROUP BY customer_id, channel
),
touch AS (
    SELECT customer_id, jsonb_object_agg(channel, last_at) AS last_per_channel
    FROM channel_use_tp GROUP BY customer_id
),
nps AS ({_latest_score("nps")}),
csat AS ({_latest_score("csat")})
UPDATE interaction.customer c SET
    first_seen_at = coalesce(seen.first_at, c.first_seen_at),
    last_seen_at = seen.last_at,
    purchase_count = coalesce(bought.n, 0),
    last_purchase_at = bought.last_at,
    preferred_channel = preferred.channel,
    channel_use = coalesce(uses.per_channel, '{{}}'::jsonb),
    last_touchpoints = coalesce(touch.last_per_channel, '{{}}'::jsonb),
    latest_nps = nps.score, latest_nps_at = nps.occurred_at,
    latest_csat = csat.score, latest_csat_at = csat.occurred_at,
    partners = coalesce(seen.partners, '{{}}'::text[]),
    updated_at = now()
{_PER_CUSTOMER}
WHERE c.id = t.id
""")

# Planned for each batch, not once per connection: a plan cached while the tables were small (a new deployment's
# first batches) scans them whole once they have grown. Measured (bench http_ingest): the traits of a group went
# from 10 ms to 500 ms within 40 s, and batches fell from ~3,000 to ~1,300 events/s. Set before EXTEND, it also
# holds for the outbox insert after it, a statement that plans in well under a millisecond.
# Its joins are taken in the order written (`join_collapse_limit = 1`): every CTE it joins is keyed by customer
# and at most the batch's size, so searching the orders of its nine relations finds nothing better, and the search
# was half the planning. Measured on 100k customers, 50 in the batch: planning 3.1-3.5 ms, then 1.4-1.6, execution
# unchanged (4.2-4.5 ms); a group of single events spends one transaction's ~20 ms in the traits for ~6 ms.
# Both settings in one statement: one round trip. Local to the transaction, as SET LOCAL.
PLAN_EACH_TIME = sa.text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), set_config('join_collapse_limit', '1', true)"
)

# The batch's new timeline rows and purchases folded into the stored traits of their customers. A customer
# whose new feedback is exactly as old as its stored latest one is left out (the tie is broken by source and
# event id, which only the rows hold) and returned, for `RECOMPUTE`.
EXTEND = sa.text(f"""
WITH t AS (SELECT DISTINCT unnest(CAST(:ids AS uuid[])) AS id),
cur AS (
    SELECT c.id, c.latest_nps_at, c.latest_csat_at, c.preferred_channel, c.channel_use, c.last_touchpoints
    FROM interaction.customer c JOIN t ON c.id = t.id
),
ac AS (
    SELECT a.customer_id, a.type, a.occurred_at, a.channel, a.source, a.event_id, a.data
    FROM interaction.activity a JOIN t ON a.customer_id = t.id
    WHERE a.id = ANY(CAST(:activity_ids AS uuid[]))
),
p AS ({_purchases("WHERE p.id = ANY(CAST(:purchase_ids AS uuid[]))")}),
nps AS ({_latest_score("nps")}),
csat AS ({_latest_score("csat")}),
tie AS (
    SELECT cur.id FROM cur JOIN nps ON nps.customer_id = cur.id WHERE nps.occurred_at = cur.latest_nps_at
    UNION
    SELECT cur.id FROM cur JOIN csat ON csat.customer_id = cur.id WHERE csat.occurred_at = cur.latest_csat_at
),
totals AS (
    SELECT customer_id, currency, count(*) AS n, sum(amount - refunded) AS total, sum(refunded) AS refunded,
           max(occurred_at) AS last_at
    FROM p WHERE NOT cancelled AND customer_id NOT IN (SELECT id FROM tie) GROUP BY customer_id, currency
),
spend AS (
    INSERT INTO interaction.customer_spend AS s (customer_id, currency, purchase_count, total_spend, average_spend,
                                                 refunded, last_purchase_at)
    SELECT customer_id, currency, n, total, round(total / n, 4), refunded, last_at FROM totals
    ON CONFLICT (customer_id, currency) DO UPDATE SET
        purchase_count = s.purchase_count + EXCLUDED.purchase_count,
        total_spend = s.total_spend + EXCLUDED.total_spend,
        average_spend = round((s.total_spend + EXCLUDED.total_spend) / (s.purchase_count + EXCLUDED.purchase_count), 4),
        refunded = s.refunded + EXCLUDED.refunded,
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
        updated_at = now()
    RETURNING customer_id
),
seen AS (
    SELECT customer_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at, array_agg(source) AS partners
    FROM ac GROUP BY customer_id
),
bought AS ({_BOUGHT}),
batch_use AS ({_CHANNEL_USES}),
-- Only the channels the batch used change: their stored uses plus the batch's.
channel_use AS (
    SELECT b.customer_id, b.channel, coalesce(CAST(cur.channel_use->b.channel->>'n' AS bigint), 0) + b.n AS n,
           greatest(CAST(cur.channel_use->b.channel->>'at' AS timestamptz), b.last_at) AS last_at
    FROM batch_use b JOIN cur ON cur.id = b.customer_id
),
-- Uses only grow, so the channel preferred before stays preferred unless one the batch used passed it.
preferred AS (
    SELECT DISTINCT ON (customer_id) customer_id, channel FROM (
        SELECT customer_id, channel, n, last_at FROM channel_use
        UNION ALL
        SELECT id, preferred_channel, CAST(channel_use->preferred_channel->>'n' AS bigint),
               CAST(channel_use->preferred_channel->>'at' AS timestamptz)
        FROM cur WHERE channel_use ? preferred_channel
    ) u ORDER BY customer_id, n DESC, last_at DESC, channel COLLATE "C"
),
uses AS ({_USES_AS_JSON}),
touch AS (
    SELECT b.customer_id,
           jsonb_object_agg(b.channel, greatest(b.last_at, CAST(cur.last_touchpoints->>b.channel AS timestamptz)))
               AS last_per_channel
    FROM (
        SELECT customer_id, channel, max(occurred_at) AS last_at FROM ac WHERE type = 'interaction.logged'
        GROUP BY customer_id, channel
    ) b JOIN cur ON cur.id = b.customer_id
    GROUP BY b.customer_id
),
extended AS (
    UPDATE interaction.customer c SET
        -- first_seen_at is the earliest timeline row once there is one (last_seen_at is null until then).
        first_seen_at = CASE WHEN c.last_seen_at IS NULL THEN coalesce(seen.first_at, c.first_seen_at)
                             ELSE least(c.first_seen_at, seen.first_at) END,
        last_seen_at = greatest(c.last_seen_at, seen.last_at),
        purchase_count = c.purchase_count + coalesce(bought.n, 0),
        last_purchase_at = greatest(c.last_purchase_at, bought.last_at),
        preferred_channel = coalesce(preferred.channel, c.preferred_channel),
        channel_use = c.channel_use || coalesce(uses.per_channel, '{{}}'::jsonb),
        last_touchpoints = c.last_touchpoints || coalesce(touch.last_per_channel, '{{}}'::jsonb),
        latest_nps = CASE WHEN nps.occurred_at > coalesce(c.latest_nps_at, '-infinity') THEN nps.score
                          ELSE c.latest_nps END,
        latest_nps_at = greatest(c.latest_nps_at, nps.occurred_at),
        latest_csat = CASE WHEN csat.occurred_at > coalesce(c.latest_csat_at, '-infinity') THEN csat.score
                           ELSE c.latest_csat END,
        latest_csat_at = greatest(c.latest_csat_at, csat.occurred_at),
        partners = ARRAY(
            SELECT DISTINCT x COLLATE "C" FROM unnest(c.partners || coalesce(seen.partners, '{{}}'::text[])) AS x ORDER BY 1
        ),
        updated_at = now()
    {_PER_CUSTOMER}
    WHERE c.id = t.id AND t.id NOT IN (SELECT id FROM tie)
    RETURNING c.id
)
SELECT id FROM tie
""")


async def recompute_traits(session: AsyncSession, customer_ids: Iterable[uuid.UUID]) -> None:
    ids = list(set(customer_ids))
    if not ids:
        return
    await session.execute(RECOMPUTE, {"ids": ids})


async def extend_traits(
    session: AsyncSession, customer_ids: Iterable[uuid.UUID], activity_ids: list[uuid.UUID], purchase_ids: list[uuid.UUID]
) -> None:
    """Fold these new timeline rows and purchases (written in this transaction) into their customers' traits.

    Only for customers whose stored rows did not otherwise change: a merge or a refund changes history, and
    its customers take `recompute_traits`."""
    ids = list(set(customer_ids))
    if not ids:
        return
    await session.execute(PLAN_EACH_TIME)
    ties = (await session.execute(EXTEND, {"ids": ids, "activity_ids": activity_ids, "purchase_ids": purchase_ids})).scalars()
    await recompute_traits(session, ties)
