"""Lifecycle analytics on millions of stage transitions: each dashboard query's time on a real Postgres.

Fills `lifecycle.stage_history` of a fresh database with `--customers` synthetic paths (1–5 transitions each:
Approach → Acquisition → Development → Retention → Churned, about 3 per customer; generated in SQL), runs
VACUUM ANALYZE, then times each analytics query of the service (its own repository functions) over a one-year
period, best of `--repeat`. Reference: the funnel the direct way, a window over every transition
(`FUNNEL_BY_WINDOW`, what `funnel_entry` replaces). The funnel is checked against a direct count: a wrong
answer raises.
"""

import argparse
import asyncio
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from bench import harness
from shared.db import make_engine, make_session_factory

from lifecycle.analytics import repository
from lifecycle.stages.repository import REFRESH_FUNNEL

FILL = sa.text("""
INSERT INTO lifecycle.stage_history (customer_id, from_stage, stage, entered_at, left_at, reason)
SELECT customer_id, lag(stage) OVER w, stage, entered_at, lead(entered_at) OVER w, 'bench'
FROM (
    SELECT c.id AS customer_id, (ARRAY['approach','acquisition','development','retention','churned'])[k] AS stage,
           c.t0 + (k - 1) * interval '30 days' + random() * interval '29 days' AS entered_at
    FROM (SELECT gen_random_uuid() AS id, timestamptz '2024-01-01' + random() * interval '700 days' AS t0,
                 1 + floor(random() * 5)::int AS n
          FROM generate_series(1, :n)) c
    CROSS JOIN LATERAL generate_series(1, c.n) AS k
) s
WINDOW w AS (PARTITION BY customer_id ORDER BY entered_at)
""")

# The funnel without `funnel_entry`: each customer's first entry by a window over every transition before `to`;
# per stage, the customers who were themselves in it (entries as they happened, skipped stages not counted).
FUNNEL_BY_WINDOW = sa.text("""
WITH entries AS (
    SELECT customer_id, CASE stage WHEN 'approach' THEN 1 WHEN 'acquisition' THEN 2 WHEN 'development' THEN 3
                                   WHEN 'retention' THEN 4 WHEN 'loyalty' THEN 5 ELSE 0 END AS rank,
           min(entered_at) OVER (PARTITION BY customer_id) AS first_entered
    FROM lifecycle.stage_history WHERE entered_at < :to
)
SELECT rank, count(DISTINCT customer_id) AS entered FROM entries WHERE first_entered >= :from AND rank > 0
GROUP BY rank ORDER BY rank
""")

DIRECT_FUNNEL_TOP = sa.text("""
SELECT count(*) FROM (SELECT customer_id FROM lifecycle.stage_history WHERE entered_at < :to
                      GROUP BY customer_id HAVING min(entered_at) >= :from) c
""")


async def measure(url: str, args: argparse.Namespace) -> dict:
    engine = make_engine(url, pool_size=2)
    factory = make_session_factory(engine)
    async with engine.begin() as conn:
        started = time.perf_counter()
        await conn.execute(FILL, {"n": args.customers})
        ids = (await conn.execute(sa.text("SELECT DISTINCT customer_id FROM lifecycle.stage_history"))).scalars().all()
        for i in range(0, len(ids), 50_000):  # the statement the service runs for the customers a batch touched
            await conn.execute(REFRESH_FUNNEL, {"customer_ids": list(ids[i : i + 50_000])})
        fill_s = time.perf_counter() - started
        rows = (await conn.execute(sa.text("SELECT count(*) FROM lifecycle.stage_history"))).scalar_one()
    # Autovacuum's job in production: statistics, and the visibility map that index-only scans need.
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM ANALYZE lifecycle.stage_history"))
        await conn.execute(sa.text("VACUUM ANALYZE lifecycle.funnel_entry"))
    start, end = datetime(2024, 7, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    queries = {
        "funnel": lambda s: repository.funnel(s, start, end, False),
        "funnel_by_cohort": lambda s: repository.funnel(s, start, end, True),
        "time_in_stage": lambda s: repository.time_in_stage(s, start, end),
        "distribution_monthly": lambda s: repository.distribution(s, start, end, "month"),
        "churn": lambda s: repository.churn(s, start, end),
    }
    timings: dict[str, float] = {}
    results: dict = {}
    async with factory() as session:
        for name, query in queries.items():
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                results[name] = await query(session)
                best = min(best, time.perf_counter() - t)
            timings[name] = best
        t = time.perf_counter()
        by_window = (await session.execute(FUNNEL_BY_WINDOW, {"from": start, "to": end})).all()
        reference = time.perf_counter() - t
        direct = (await session.execute(DIRECT_FUNNEL_TOP, {"from": start, "to": end})).scalar_one()
    await engine.dispose()
    top = results["funnel"][None]
    entered = {i + 1: s["entered"] for i, s in enumerate(top["stages"]) if s["entered"]}
    windowed = {r.rank: r.entered for r in by_window}
    if top["customers"] != direct or entered != windowed:
        raise AssertionError(
            f"funnel {entered} of {top['customers']} disagrees with the direct count {direct} or the window {windowed}"
        )
    return {
        "rows": rows,
        "fill_s": fill_s,
        "timings": timings,
        "reference_window_funnel_s": reference,
        "funnel_customers": direct,
    }


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench lifecycle_analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=350_000, help="synthetic customers (≈3 transitions each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query; the best counts")
    args = parser.parse_args(argv)
    with harness.servers() as (server_url, _), harness.database(server_url, ["lifecycle"]) as url:
        out = asyncio.run(measure(url, args))
    print(f"{out['rows']:,} transitions for {args.customers:,} customers (filled in {out['fill_s']:.1f} s)")
    for name, seconds in out["timings"].items():
        print(f"  {name:<22}{seconds * 1000:>9.0f} ms")
    ref = out["reference_window_funnel_s"]
    print(f"  funnel by window (ref) {ref * 1000:>8.0f} ms, {ref / out['timings']['funnel']:.1f}x the funnel_entry one")
    return {
        "benchmark": "lifecycle_analytics",
        "transitions": out["rows"],
        "customers": args.customers,
        **{f"{k}_ms": round(v * 1000, 1) for k, v in out["timings"].items()},
        "funnel_by_window_ms": round(ref * 1000, 1),
    }
