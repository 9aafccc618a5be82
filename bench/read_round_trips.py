"""Reads in a transaction, statement by statement, and on the driver connection: the lifecycle GET's statements.

Each read runs the two statements `GET /v1/customers/{id}/lifecycle` makes (the stage row or the merged-away
id's survivor, then the stage history) through a session, `--reads` times per round, the kinds alternating:

- `transaction`: `SessionDep`'s session, as every endpoint had it: BEGIN, the two statements through
  SQLAlchemy, COMMIT (four round trips);
- `autocommit`: `ReadSessionDep`'s (`shared.db.autocommit`): the two statements alone, through SQLAlchemy
  (two round trips), as the GET read until stop 38;
- `driver`: `ReadSessionDep`'s, the two statements sent on its asyncpg connection (`shared.db.driver_connection`),
  as the GET reads now.

It prints, for each kind, the CPU per read of this process (SQLAlchemy, asyncpg, the event loop) and of
PostgreSQL's backends, best of the rounds, and the ratios. Only PostgreSQL is started (or `DATABASE_URL`'s used).
"""

import argparse
import asyncio
import time
import uuid

import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench import harness
from shared.db import make_engine, make_read_session_factory, make_session_factory

from lifecycle.stages import repository

KINDS = ("transaction", "autocommit", "driver")
ROUND_TRIPS = (4, 2, 2)
# The GET's statements as SQLAlchemy ran them until stop 38 (lifecycle/stages/repository.py has them now for asyncpg).
STAGE_OR_SURVIVOR = sa.text(repository.STAGE_OR_SURVIVOR.replace("$1", ":c"))
HISTORY = sa.text(repository.STAGE_HISTORY.replace("$1", ":c"))


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench read_round_trips", description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=5000, help="reads of each kind per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the lowest CPU of each kind is reported")
    args = parser.parse_args(argv)
    with harness.servers(kafka=False) as (server_url, _), harness.database(server_url, ["lifecycle"]) as url:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            best = runner.run(_bench(url, args.reads, args.rounds))
    ratio = best["transaction"]["total_us"] / best["autocommit"]["total_us"]
    driver_ratio = best["autocommit"]["total_us"] / best["driver"]["total_us"]
    print(f"{args.reads} reads per round, best of {args.rounds}; two statements per read")
    print(f"{'session':<13}{'round trips':>12}{'process µs':>12}{'PostgreSQL µs':>15}{'together µs':>13}")
    for kind, trips in zip(KINDS, ROUND_TRIPS, strict=True):
        b = best[kind]
        print(f"{kind:<13}{trips:>12}{b['process_us']:>12.0f}{b['postgres_us']:>15.0f}{b['total_us']:>13.0f}")
    print(f"autocommit reads cost {ratio:.2f}x less CPU than reads in a transaction")
    print(f"reads on the driver connection cost {driver_ratio:.2f}x less CPU than the same through SQLAlchemy")
    return {
        "benchmark": "read_round_trips",
        "reads": args.reads,
        "rounds": args.rounds,
        **best,
        "ratio": round(ratio, 2),
        "driver_ratio": round(driver_ratio, 2),
    }


async def _bench(url: str, reads: int, rounds: int) -> dict:
    engine = make_engine(url, pool_size=1)
    factories = {
        "transaction": make_session_factory(engine),
        "autocommit": make_read_session_factory(engine),
        "driver": make_read_session_factory(engine),
    }
    ids = [uuid.uuid4() for _ in range(100)]
    best: dict[str, dict[str, float]] = {}
    try:
        for kind in KINDS:  # warm: connection, prepared statements, SQLAlchemy's compiled cache
            await _reads(factories[kind], ids, 200, driver=kind == "driver")
        for _ in range(rounds):
            for kind in KINDS:
                before_server = await harness.server_cost(factories["transaction"])
                before = time.process_time()
                await _reads(factories[kind], ids, reads, driver=kind == "driver")
                process_s = time.process_time() - before
                server = harness.cost_since(before_server, await harness.server_cost(factories["transaction"]))
                figures = {
                    "process_us": process_s / reads * 1e6,
                    "postgres_us": (server["postgres_cpu_s"] or 0.0) / reads * 1e6,
                }
                figures["total_us"] = figures["process_us"] + figures["postgres_us"]
                if kind not in best or figures["total_us"] < best[kind]["total_us"]:
                    best[kind] = {k: round(v, 1) for k, v in figures.items()}
    finally:
        await engine.dispose()
    return best


async def _reads(factory: async_sessionmaker[AsyncSession], ids: list[uuid.UUID], n: int, driver: bool) -> None:
    for i in range(n):
        # As `get_session` / `get_read_session` use them: one session per request, committed at the end.
        async with factory() as session:
            customer_id = ids[i % len(ids)]
            if driver:
                await repository.stage_or_survivor(session, customer_id)
                await repository.stage_history_of(session, customer_id)
            else:
                (await session.execute(STAGE_OR_SURVIVOR, {"c": customer_id})).one()
                (await session.execute(HISTORY, {"c": customer_id})).all()
            await session.commit()
