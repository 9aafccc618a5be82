"""Lifecycle derivation: one consumed batch of facts that extend the history, incremental vs full replay.

`--customers` customers get histories of `--history` facts each (purchases and value updates, in time order,
through the service's own projection on a fresh Postgres). Then one batch holding a new value update per
customer is applied through the same projection, twice per round, each time in a transaction that is rolled
back: once as it runs (each customer derived from the state kept with its stage) and once with the kept
states cleared first (each customer replayed from all its facts: what every batch did before). Prints the
wall time and this process's CPU per batch, best of `--repeat`, and their ratio, per history length.
"""

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench import harness
from shared.messaging.inprocess import InProcessTransport
from tests.services.lifecycle.conftest import consumed, purchase, value

import lifecycle.app
from lifecycle.settings import LifecycleSettings
from lifecycle.stages.projection import facts_subscription


async def measure(database_url: str, customers: int, history: int, repeat: int) -> dict:
    settings = LifecycleSettings(database_url=database_url, transport="inprocess", run_workers=False, sweep_interval_s=0)
    runtime = lifecycle.app.create_app(settings, InProcessTransport()).state.runtime
    handler = facts_subscription(runtime.outbox).handler
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(customers)]
    events = [
        purchase(c, now - timedelta(days=300 - k * 290 / history, seconds=i))
        if k % 2 == 0
        else value(c, now - timedelta(days=300 - k * 290 / history, seconds=i), "gold", 0.9)
        for k in range(history)
        for i, c in enumerate(ids)
    ]
    for i in range(0, len(events), 500):
        async with runtime.session_factory() as session, session.begin():
            await handler(session, [consumed(e) for e in events[i : i + 500]])
    batch = [consumed(value(c, now, "gold", 0.8)) for c in ids]
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for mode in ("incremental", "replay"):
            async with runtime.session_factory() as session:
                await session.begin()
                if mode == "replay":  # without a kept state every customer is replayed from all its facts
                    await session.execute(
                        sa.text(
                            "UPDATE lifecycle.customer_stage SET derivation = NULL WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
                        ),
                        {"ids": ids},
                    )
                wall, cpu = time.perf_counter(), time.process_time()
                await handler(session, batch)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                await session.rollback()
            best[mode] = min(best.get(mode, (wall, cpu)), (wall, cpu))
    await runtime.engine.dispose()
    row = {f"{mode}_{k}": round(v * 1000, 1) for mode, (w, c) in best.items() for k, v in (("wall_ms", w), ("cpu_ms", c))}
    row["wall_ratio"] = round(best["replay"][0] / best["incremental"][0], 2)
    row["cpu_ratio"] = round(best["replay"][1] / best["incremental"][1], 2)
    print(
        f"{history:>8}{row['incremental_wall_ms']:>12.0f}{row['replay_wall_ms']:>10.0f}{row['wall_ratio']:>8.1f}x"
        f"{row['incremental_cpu_ms']:>12.0f}{row['replay_cpu_ms']:>10.0f}{row['cpu_ratio']:>8.1f}x"
    )
    return row


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench lifecycle_derivation", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500, help="customers in the measured batch")
    parser.add_argument("--history", default="2,20,60", help="comma-separated facts per customer before the batch")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each mode is reported")
    args = parser.parse_args(argv)
    histories = [int(h) for h in args.history.split(",")]
    harness.internal_keys()
    figures: dict = {"benchmark": "lifecycle_derivation", "customers": args.customers}
    with harness.servers() as (server_url, _), harness.database(server_url, ["lifecycle"]) as database_url:
        print(f"one batch of {args.customers} value updates, each extending its customer's history; best of {args.repeat}")
        print(f"{'history':>8}{'incr. ms':>12}{'replay':>10}{'ratio':>9}{'incr. CPU':>12}{'replay':>10}{'ratio':>9}")
        for h in histories:
            figures[f"history_{h}"] = asyncio.run(measure(database_url, args.customers, h, args.repeat))
    return figures
