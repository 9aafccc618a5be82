"""Recomputes the computed traits of a set of customers from their stored rows: one statement per batch.

Order-independent by construction (each trait is a function of the stored facts, not of arrival order), so
late events, duplicates, merges and unmerges all leave the traits a full recomputation would give.
Definitions are in docs/interaction.md.
"""

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

RECOMPUTE = sa.text("""
WITH t AS (SELECT DISTINCT unnest(CAST(:ids AS uuid[])) AS id),
p AS (
    SELECT p.customer_id, p.currency, p.amount, p.occurred_at, p.channel, p.source, p.event_id,
           coalesce(x.cancelled, false) AS cancelled,
           CASE WHEN x.full_refund THEN p.amount ELSE least(p.amount, coalesce(x.refunded, 0)) END AS refunded
    FROM interaction.purchase p JOIN t ON p.customer_id = t.id
    LEFT JOIN LATERAL (
        SELECT bool_or(a.cancelled) AS cancelled, sum(a.amount) AS refunded,
               bool_or(a.amount IS NULL AND NOT a.cancelled) AS full_refund
        FROM interaction.purchase_adjustment a WHERE a.source = p.source AND a.order_id = p.order_id
    ) x ON true
),
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
bought AS (
    SELECT customer_id, count(*) AS n, max(occurred_at) AS last_at FROM p WHERE NOT cancelled GROUP BY customer_id
),
channel_use AS (
    SELECT customer_id, channel, count(*) AS n, max(occurred_at) AS last_at FROM (
        SELECT customer_id, channel, occurred_at FROM ac WHERE type = 'interaction.logged'
        UNION ALL
        SELECT customer_id, channel, occurred_at FROM p WHERE NOT cancelled
    ) u GROUP BY customer_id, channel
),
preferred AS (
    SELECT DISTINCT ON (customer_id) customer_id, channel FROM channel_use
    ORDER BY customer_id, n DESC, last_at DESC, channel COLLATE "C"
),
channel_use_tp AS (
    SELECT customer_id, channel, max(occurred_at) AS last_at FROM ac WHERE type = 'interaction.logged'
    GROUP BY customer_id, channel
),
touch AS (
    SELECT customer_id, jsonb_object_agg(channel, last_at) AS last_per_channel
    FROM channel_use_tp GROUP BY customer_id
),
nps AS (
    SELECT DISTINCT ON (customer_id) customer_id, CAST(data->>'nps' AS int) AS score, occurred_at FROM ac
    WHERE type = 'feedback.submitted' AND data ? 'nps'
    ORDER BY customer_id, occurred_at DESC, source COLLATE "C" DESC, event_id COLLATE "C" DESC
),
csat AS (
    SELECT DISTINCT ON (customer_id) customer_id, CAST(data->>'csat' AS int) AS score, occurred_at FROM ac
    WHERE type = 'feedback.submitted' AND data ? 'csat'
    ORDER BY customer_id, occurred_at DESC, source COLLATE "C" DESC, event_id COLLATE "C" DESC
)
UPDATE interaction.customer c SET
    first_seen_at = coalesce(seen.first_at, c.first_seen_at),
    last_seen_at = seen.last_at,
    purchase_count = coalesce(bought.n, 0),
    last_purchase_at = bought.last_at,
    preferred_channel = preferred.channel,
    last_touchpoints = coalesce(touch.last_per_channel, '{}'::jsonb),
    latest_nps = nps.score, latest_nps_at = nps.occurred_at,
    latest_csat = csat.score, latest_csat_at = csat.occurred_at,
    partners = coalesce(seen.partners, '{}'::text[]),
    updated_at = now()
FROM t
LEFT JOIN seen ON seen.customer_id = t.id
LEFT JOIN bought ON bought.customer_id = t.id
LEFT JOIN preferred ON preferred.customer_id = t.id
LEFT JOIN touch ON touch.customer_id = t.id
LEFT JOIN nps ON nps.customer_id = t.id
LEFT JOIN csat ON csat.customer_id = t.id
WHERE c.id = t.id
""")


async def recompute_traits(session: AsyncSession, customer_ids: Iterable[uuid.UUID]) -> None:
    ids = list(set(customer_ids))
    if not ids:
        return
    await session.execute(RECOMPUTE, {"ids": ids})
