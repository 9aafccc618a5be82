"""The dashboard figures, each one SQL statement over the stage history (or the deals).

The funnel reads `funnel_entry` (one row per customer, indexed by first entry; when it first entered each stage).
Covering indexes (migration 0002) serve the rest: `stage_history (entered_at) INCLUDE (customer_id, stage, left_at)`
for the period filters, `(stage, entered_at) INCLUDE (customer_id, left_at)` for per-stage scans (time in stage, churn).
"""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

FUNNEL_STAGES = ["approach", "acquisition", "development", "retention", "loyalty"]


# Customers whose lifecycle began in [from, to) (cohort: month of that first entry). Per stage, counted as it
# happened (from the stage history, kept per customer in `funnel_entry`), all before `to`:
#   entered   — the customer was itself in the stage;
#   skipped   — it never was, but entered a later stage (a jump over it is not reaching it);
#   converted — it entered the stage and, at or after its first entry there, the next stage.
# Reads `funnel_entry` (one row per customer, by first entry) rather than windowing over every transition.
def _funnel_sql() -> str:
    columns = [f"entered_{s}_at" for s in FUNNEL_STAGES]
    picks = []
    for i, this in enumerate(columns):
        picks.append(f"count(*) FILTER (WHERE {this} < :to) AS entered_{i + 1}")
        later = columns[i + 1 :]
        if later:
            after = f"least({', '.join(later)})" if len(later) > 1 else later[0]
            picks.append(f"count(*) FILTER (WHERE ({this} IS NULL OR {this} >= :to) AND {after} < :to) AS skipped_{i + 1}")
            nxt = later[0]
            picks.append(f"count(*) FILTER (WHERE {this} < :to AND {nxt} < :to AND {nxt} >= {this}) AS converted_{i + 1}")
    separator = ",\n       "
    return f"""
SELECT CASE WHEN :by_cohort THEN cohort_month END AS cohort, count(*) AS customers,
       {separator.join(picks)}
FROM lifecycle.funnel_entry
WHERE first_entered_at >= :from AND first_entered_at < :to
GROUP BY 1 ORDER BY 1 NULLS FIRST
"""


FUNNEL = sa.text(_funnel_sql())

TIME_IN_STAGE = sa.text("""
SELECT stage, count(*) AS stays,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - entered_at)) AS p90_s,
       avg(extract(epoch FROM left_at - entered_at)) AS mean_s
FROM lifecycle.stage_history
WHERE entered_at >= :from AND entered_at < :to AND left_at IS NOT NULL
GROUP BY stage ORDER BY stage
""")

# Customers per stage at each point: every entry adds one from the first point at or after it, every exit
# removes one from the first point at or after it; a running sum per stage over the points. Cost grows with
# the transitions, not with transitions × points.
DISTRIBUTION = sa.text("""
WITH points AS (
    SELECT array_agg(at ORDER BY at) AS ats
    FROM generate_series(date_trunc(:unit, CAST(:from AS timestamptz), 'UTC'), :to,
                         CAST('1 ' || :unit AS interval)) AS at
), bucketed AS (
    -- the index of the first point at or after each entry / exit (width_bucket: a binary search)
    SELECT stage, i, sum(d) AS d FROM (
        SELECT h.stage, width_bucket(h.entered_at - interval '1 microsecond', (SELECT ats FROM points)) + 1 AS i,
               count(*) AS d
        FROM lifecycle.stage_history h WHERE h.entered_at <= :to GROUP BY 1, 2
        UNION ALL
        SELECT h.stage, width_bucket(h.left_at - interval '1 microsecond', (SELECT ats FROM points)) + 1,
               -count(*)
        FROM lifecycle.stage_history h WHERE h.left_at <= :to GROUP BY 1, 2
    ) u GROUP BY 1, 2
), running AS (
    SELECT p.ats[g.k] AS at, s.stage,
           sum(coalesce(b.d, 0)) OVER (PARTITION BY s.stage ORDER BY g.k) AS customers
    FROM points p CROSS JOIN generate_subscripts(p.ats, 1) AS g(k)
    CROSS JOIN (SELECT DISTINCT stage FROM bucketed) s
    LEFT JOIN bucketed b ON b.i = g.k AND b.stage = s.stage
)
SELECT at, stage, customers FROM running WHERE customers > 0 ORDER BY at, stage
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
       sum(d.amount) AS amount, round(sum(d.amount * s.win_probability), 4) AS weighted
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


async def funnel(session: AsyncSession, start: datetime, end: datetime, by_cohort: bool) -> dict[datetime | None, dict]:
    """{cohort (None when not by cohort): {"customers": n, "stages": [{"entered", "skipped", "converted"} per
    stage, Approach first; skipped and converted are 0 for the last stage]}}."""
    rows = await session.execute(FUNNEL, {"from": start, "to": end, "by_cohort": by_cohort})
    out = {}
    for r in rows:
        m = r._mapping
        out[r.cohort] = {
            "customers": r.customers,
            "stages": [
                {"entered": m[f"entered_{i}"], "skipped": m.get(f"skipped_{i}", 0), "converted": m.get(f"converted_{i}", 0)}
                for i in range(1, len(FUNNEL_STAGES) + 1)
            ],
        }
    return out


async def time_in_stage(session: AsyncSession, start: datetime, end: datetime) -> list[sa.Row]:
    return list(await session.execute(TIME_IN_STAGE, {"from": start, "to": end}))


async def distribution(session: AsyncSession, start: datetime, end: datetime, unit: str) -> list[sa.Row]:
    return list(await session.execute(DISTRIBUTION, {"from": start, "to": end, "unit": unit}))


async def churn(session: AsyncSession, start: datetime, end: datetime) -> sa.Row:
    return (await session.execute(CHURN, {"from": start, "to": end})).one()


async def pipeline_value(
    session: AsyncSession, pipeline: str | None, close_from: datetime | None, close_to: datetime | None
) -> list[sa.Row]:
    return list(await session.execute(PIPELINE_VALUE, {"pipeline": pipeline, "close_from": close_from, "close_to": close_to}))
