"""Traits of a batch's customers as their histories grow: extended by the new rows against recomputed, side by side.

Ingestion updates the computed traits (spend, purchase count, preferred channel, last touchpoints, NPS/CSAT,
partners, first and last seen) of every customer a batch touches. Before 2026-12-07 it recomputed them from
each customer's whole history (`recompute_traits`, still used where history changed: merges, refunds); now it
folds the batch's new rows into the stored traits (`extend_traits`). This measures both on the same data:

  for each history length H (`--histories`), `--customers` customers each with H/2 touchpoints and H/2
  purchases on their timeline (inserted straight into interaction's tables, traits recomputed once: setup);
  then, `--rounds` times and alternating which goes first, one batch giving each customer one new touchpoint
  and one new purchase, its traits updated by each way in its own transaction, rolled back after.

A third way is `extend_traits` as it was planned before 2026-12-07 (`searched`): the same statement, with the
planner searching the order of its joins rather than taking them as written (interaction/traits/service.py,
`PLAN_EACH_TIME`).

Printed per history length: milliseconds per batch (the traits statement alone; best and median of the
rounds), the ratios, and PostgreSQL's CPU per batch from /proc. Every way must leave the same traits, or the
benchmark raises.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench import harness
from shared.db import make_engine, make_session_factory

from interaction.traits.service import EXTEND, extend_traits, recompute_traits

CHANNELS = ["web", "store", "app", "phone", "email"]
WAYS = ("recompute", "extend", "searched")
# extend_traits's planning before 2026-12-07: a plan made for each batch, its join order searched.
SEARCHED_PLAN = sa.text("SET LOCAL plan_cache_mode = force_custom_plan")

# One customer per id in :ids with :half touchpoints and :half purchases (each with its timeline row), spread
# over the two years before 2026; the customers' first_seen_at is their first day.
SEED = [
    sa.text("""
    INSERT INTO interaction.customer (id, first_seen_at)
    SELECT id, timestamptz '2024-01-01' FROM unnest(CAST(:ids AS uuid[])) AS id
    """),
    sa.text("""
    INSERT INTO interaction.activity (id, customer_id, home_customer_id, source, event_id, type, occurred_at, channel, data)
    SELECT gen_random_uuid(), c, c, 'bench-shop', 't-' || c || '-' || g, 'interaction.logged',
           timestamptz '2024-01-01' + g * interval '17 minutes', (CAST(:channels AS text[]))[1 + g % 5], '{}'::jsonb
    FROM unnest(CAST(:ids AS uuid[])) AS c, generate_series(1, :half) AS g
    """),
    sa.text("""
    INSERT INTO interaction.purchase (id, customer_id, home_customer_id, source, order_id, amount, currency, channel,
                                      occurred_at, event_id)
    SELECT gen_random_uuid(), c, c, 'bench-shop', 'o-' || c || '-' || g, 10 + g % 90, 'EUR',
           (CAST(:channels AS text[]))[1 + g % 3], timestamptz '2024-01-01' + g * interval '23 minutes', 'o-' || c || '-' || g
    FROM unnest(CAST(:ids AS uuid[])) AS c, generate_series(1, :half) AS g
    """),
    sa.text("""
    INSERT INTO interaction.activity (id, customer_id, home_customer_id, source, event_id, type, occurred_at, channel, data)
    SELECT gen_random_uuid(), p.customer_id, p.customer_id, p.source, p.event_id, 'order.completed', p.occurred_at,
           p.channel, '{}'::jsonb
    FROM interaction.purchase p WHERE p.customer_id = ANY(CAST(:ids AS uuid[]))
    """),
]
BATCH_ACTIVITY = sa.text("""
INSERT INTO interaction.activity (id, customer_id, home_customer_id, source, event_id, type, occurred_at, channel, data)
SELECT a, c, c, 'bench-shop', 'new-' || a, t, timestamptz '2026-01-02', 'app', '{}'::jsonb
FROM unnest(CAST(:activity_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:types AS text[])) AS u(a, c, t)
""")
BATCH_PURCHASES = sa.text("""
INSERT INTO interaction.purchase (id, customer_id, home_customer_id, source, order_id, amount, currency, channel,
                                  occurred_at, event_id)
SELECT p, c, c, 'bench-shop', 'new-' || p, 42.5, 'EUR', 'app', timestamptz '2026-01-02', 'new-' || p
FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[])) AS u(p, c)
""")
TRAITS = sa.text("""
SELECT c.id, c.first_seen_at, c.last_seen_at, c.purchase_count, c.last_purchase_at, c.preferred_channel,
       c.channel_use, c.last_touchpoints, c.partners, s.purchase_count, s.total_spend, s.average_spend
FROM interaction.customer c JOIN interaction.customer_spend s ON s.customer_id = c.id
WHERE c.id = ANY(CAST(:ids AS uuid[])) ORDER BY c.id
""")


async def seed(sessions: async_sessionmaker[AsyncSession], customers: int, history: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(customers)]
    async with sessions() as session, session.begin():
        for statement in SEED:
            await session.execute(statement, {"ids": ids, "half": history // 2, "channels": CHANNELS})
        await recompute_traits(session, ids)
    async with sessions() as session:
        await session.execute(sa.text("ANALYZE interaction.activity, interaction.purchase, interaction.customer"))
        await session.commit()
    return ids


async def one_batch(sessions: async_sessionmaker[AsyncSession], ids: list[uuid.UUID], way: str) -> tuple[float, float, list]:
    """(seconds of the traits statement, PostgreSQL CPU seconds of the whole transaction, the traits it left)."""
    activity_ids = [uuid.uuid4() for _ in range(2 * len(ids))]
    purchase_ids = [uuid.uuid4() for _ in ids]
    async with sessions() as session:
        before = await harness.server_cost(sessions)
        await session.execute(
            BATCH_ACTIVITY,
            {
                "activity_ids": activity_ids,
                "customer_ids": ids + ids,
                "types": ["interaction.logged"] * len(ids) + ["order.completed"] * len(ids),
            },
        )
        await session.execute(BATCH_PURCHASES, {"purchase_ids": purchase_ids, "customer_ids": ids})
        start = time.perf_counter()
        if way == "recompute":
            await recompute_traits(session, ids)
        elif way == "extend":
            await extend_traits(session, ids, activity_ids, purchase_ids)
        else:
            await session.execute(SEARCHED_PLAN)
            params = {"ids": ids, "activity_ids": activity_ids, "purchase_ids": purchase_ids}
            await recompute_traits(session, (await session.execute(EXTEND, params)).scalars().all())
        took = time.perf_counter() - start
        traits = [tuple(r) for r in await session.execute(TRAITS, {"ids": ids})]
        await session.rollback()
    cpu = harness.cost_since(before, await harness.server_cost(sessions))["postgres_cpu_s"]
    return took, cpu or 0.0, traits


async def measure(database_url: str, histories: list[int], customers: int, rounds: int) -> dict:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    results: dict[str, dict] = {}
    try:
        print(
            f"{'history':>8}{'recompute ms':>14}{'extend ms':>11}{'ratio':>8}{'searched ms':>13}{'ratio':>8}"
            f"{'PG CPU ms rec/ext/sea':>24}   (per batch of {customers} customers)"
        )
        for history in histories:
            ids = await seed(sessions, customers, history)
            times: dict[str, list[float]] = {w: [] for w in WAYS}
            cpu: dict[str, list[float]] = {w: [] for w in WAYS}
            for r in range(rounds):
                order = WAYS[r % len(WAYS) :] + WAYS[: r % len(WAYS)]  # each way goes first in turn
                left = {}
                for way in order:
                    took, used, left[way] = await one_batch(sessions, ids, way)
                    times[way].append(took)
                    cpu[way].append(used)
                # Same new rows (ids aside) and the same history: the ways must agree on every trait.
                if not left["recompute"] == left["extend"] == left["searched"]:
                    raise AssertionError(f"history {history}: extended traits differ from recomputed ones")
            row = {
                w: {
                    "best_ms": round(min(times[w]) * 1000, 2),
                    "median_ms": round(statistics.median(times[w]) * 1000, 2),
                    "postgres_cpu_ms": round(statistics.median(cpu[w]) * 1000, 1),
                }
                for w in WAYS
            }
            row["ratio"] = round(row["recompute"]["median_ms"] / row["extend"]["median_ms"], 1)
            row["searched_ratio"] = round(row["searched"]["median_ms"] / row["extend"]["median_ms"], 2)
            results[str(history)] = row
            print(
                f"{history:>8}{row['recompute']['median_ms']:>14.1f}{row['extend']['median_ms']:>11.1f}{row['ratio']:>7.1f}x"
                f"{row['searched']['median_ms']:>13.1f}{row['searched_ratio']:>7.2f}x"
                f"{row['recompute']['postgres_cpu_ms']:>12.0f} / {row['extend']['postgres_cpu_ms']:.0f}"
                f" / {row['searched']['postgres_cpu_ms']:.0f}"
            )
    finally:
        await engine.dispose()
    return results


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench traits", description=__doc__.splitlines()[0])
    parser.add_argument("--histories", default="10,100,1000,10000", help="events per customer, comma-separated")
    parser.add_argument("--customers", type=int, default=100, help="customers per batch (each gets two new events)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    histories = [int(h) for h in args.histories.split(",") if h]
    with harness.servers() as (server_url, _), harness.database(server_url, ["interaction"]) as database_url:
        results = asyncio.run(measure(database_url, histories, args.customers, args.rounds))
    return {"benchmark": "traits", "customers_per_batch": args.customers, "rounds": args.rounds, "by_history": results}
