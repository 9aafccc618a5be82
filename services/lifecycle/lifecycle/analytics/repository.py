"""The dashboard figures, each one SQL statement over the stage history (or the deals).

Covering indexes (migration 0002) keep them index scans: `stage_history (entered_at) INCLUDE (customer_id,
stage, left_at)` for the period filters and the cohort window, `(stage, entered_at) INCLUDE (customer_id,
left_at)` for per-stage scans (time in stage, distribution, churn).
"""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

FUNNEL_STAGES = ["approach", "acquisition", "development", "retention", "loyalty"]
RANK_SQL = ("CASE stage WHEN 'approach' THEN 1 WHEN 'acquisition' THEN 2 WHEN 'development' THEN 3 "
            "WHEN 'retention' THEN 4 WHEN 'loyalty' THEN 5 ELSE 0 END")

# Customers whose lifecycle began in [from, to) (cohort: month of that first entry); a customer reached a
# stage when, before `to`, it entered that stage or a later one (skipping is reaching).
FUNNEL = sa.text(f"""
WITH entries AS (
    SELECT customer_id, {RANK_SQL} AS rank,
           min(entered_at) OVER (PARTITION BY customer_id) AS first_entered
    FROM lifecycle.stage_history WHERE entered_at < :to
), customers AS (
    SELECT customer_id, CASE WHEN :by_cohort THEN date_trunc('month', min(first_entered), 'UTC') END AS cohort,
           max(rank) AS max_rank
    FROM entries WHERE first_entered >= :from
    GROUP BY customer_id
)
SELECT cohort, r.rank, count(*) FILTER (WHERE max_rank >= r.rank) AS reached
FROM customers CROSS JOIN generate_series(1, 5) AS r(rank)
GROUP BY cohort, r.rank ORDER BY cohort NULLS FIRST, r.rank
""")

TIME_IN_STAGE = sa.text("""
SELECT stage, count(*) AS stays,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) AS p90_s,
       avg(extract(epoch FROM left_at - entered_at)) AS mean_s
FROM lifecycle.stage_history
WHERE entered_at >= :from AND entered_at < :to AND left_at IS NOT NULL
GROUP BY stage ORDER BY stage
""")

DISTRIBUTION = sa.text("""
WITH points AS (
    SELECT generate_series(date_trunc(:unit, CAST(:from AS timestamptz), 'UTC'), :to,
                           CAST('1 ' || :unit AS interval)) AS at
)
SELECT p.at, h.stage, count(h.customer_id) AS customers
FROM points p JOIN lifecycle.stage_history h
  ON h.entered_at <= p.at AND (h.left_at IS NULL OR h.left_at > p.at)
GROUP BY p.at, h.stage ORDER BY p.at, h.stage
""")

CHURN = sa.text("""
SELECT
  (SELECT count(*) FROM lifecycle.stage_history WHERE stage IN ('development', 'retention', 'loyalty')
     AND entered_at <= :from AND (left_at IS NULL OR left_at > :from)) AS active_at_start,
  (SELECT count(DISTINCT customer_id) FROM lifecycle.stage_history
     WHERE stage IN ('development', 'retention', 'loyalty') AND entered_at >= :from AND entered_at < :to
       AND (from_stage IS NULL OR from_stage NOT IN ('development', 'retention', 'loyalty'))) AS became_active,
  (SELECT count(DISTINCT customer_id) FROM lifecycle.stage_history
     WHERE stage = 'churned' AND entered_at >= :from AND entered_at < :to) AS churned,
  (SELECT count(*) FROM lifecycle.stage_history WHERE stage = 'churned'
     AND entered_at <= :from AND (left_at IS NULL OR left_at > :from)) AS churned_at_start,
  (SELECT count(DISTINCT customer_id) FROM lifecycle.stage_history
     WHERE from_stage = 'churned' AND stage IN ('development', 'retention', 'loyalty')
       AND entered_at >= :from AND entered_at < :to) AS reactivated
""")

PIPELINE_VALUE = sa.text("""
SELECT p.key AS pipeline, d.currency, s.key AS stage, s.position, s.win_probability, count(*) AS deals,
       sum(d.amount) AS amount, sum(d.amount * s.win_probability) AS weighted
FROM lifecycle.deal d
JOIN lifecycle.pipeline p ON p.id = d.pipeline_id
JOIN lifecycle.pipeline_stage s ON s.pipeline_id = d.pipeline_id AND s.key = d.stage_key
WHERE d.status = 'open' AND d.amount IS NOT NULL
  AND (CAST(:pipeline AS text) IS NULL OR p.key = :pipeline)
  AND (CAST(:close_from AS timestamptz) IS NULL OR d.expected_close >= :close_from)
  AND (CAST(:close_to AS timestamptz) IS NULL OR d.expected_close < :close_to)
GROUP BY p.key, d.currency, s.key, s.position, s.win_probability
ORDER BY p.key, d.currency, s.position
""")


async def funnel(session: AsyncSession, start: datetime, end: datetime, by_cohort: bool) -> list[sa.Row]:
    return list(await session.execute(FUNNEL, {"from": start, "to": end, "by_cohort": by_cohort}))


async def time_in_stage(session: AsyncSession, start: datetime, end: datetime) -> list[sa.Row]:
    return list(await session.execute(TIME_IN_STAGE, {"from": start, "to": end}))


async def distribution(session: AsyncSession, start: datetime, end: datetime, unit: str) -> list[sa.Row]:
    return list(await session.execute(DISTRIBUTION, {"from": start, "to": end, "unit": unit}))


async def churn(session: AsyncSession, start: datetime, end: datetime) -> sa.Row:
    return (await session.execute(CHURN, {"from": start, "to": end})).one()


async def pipeline_value(session: AsyncSession, pipeline: str | None, close_from: datetime | None,
                         close_to: datetime | None) -> list[sa.Row]:
    return list(await session.execute(PIPELINE_VALUE, {"pipeline": pipeline, "close_from": close_from,
                                                       "close_to": close_to}))
