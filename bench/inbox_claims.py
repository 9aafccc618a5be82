"""Inbox claims with random or time-ordered event ids: what PostgreSQL pays per claimed key, side by side.

Every consumer claims each event it applies in its inbox (`shared/messaging/inbox.claim_many`): one primary-key
row per (consumer, source, event id). The event ids are the producers': random (UUID version 4) before
shared/ids.py, time-ordered (version 7) since. The benchmark fills the gateway's inbox with `--history` keys
claimed earlier (random ones: what a deployment holds from before the change), then claims batches of new keys
through the real statement, the two kinds alternating, each kind starting right after a CHECKPOINT (as a
deployment's inserts do every `checkpoint_timeout`). It prints, per claimed key and per kind: the wall time, the
CPU of PostgreSQL's backend and the WAL written (full-page images included: the first change to a page after a
checkpoint logs the whole 8 kB page), the best of the rounds, and the ratio. Only PostgreSQL is started (or
`DATABASE_URL`'s used).
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench import harness
from shared.db import make_engine, make_session_factory
from shared.ids import time_ordered_id
from shared.messaging.inbox import claim_many
from shared.messaging.tables import messaging_tables

KINDS: dict[str, Callable[[], uuid.UUID]] = {"random (v4)": uuid.uuid4, "time-ordered (v7)": time_ordered_id}
CONSUMER, SOURCE = "bench-consumer", "interaction"


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench inbox_claims", description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000, help="keys in the inbox before measuring")
    parser.add_argument("--batch", type=int, default=200, help="keys per claim (one consumer batch)")
    parser.add_argument("--claims", type=int, default=100, help="claims of each kind per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the lowest cost of each kind is reported")
    args = parser.parse_args(argv)
    with harness.servers(kafka=False) as (server_url, _), harness.database(server_url, ["gateway"]) as url:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            best = runner.run(_bench(url, args))
    keys = args.batch * args.claims
    print(
        f"{args.history:,} keys in the inbox before; {args.claims} claims of {args.batch} keys per kind and round, "
        f"best of {args.rounds}"
    )
    print(f"{'event ids':<20}{'wall µs/key':>13}{'PostgreSQL CPU µs/key':>23}{'WAL B/key':>11}")
    for kind, b in best.items():
        print(f"{kind:<20}{b['wall_us']:>13.1f}{b['postgres_cpu_us']:>23.1f}{b['wal_bytes']:>11.0f}")
    random_, ordered = best["random (v4)"], best["time-ordered (v7)"]
    ratios = {k: round(random_[k] / ordered[k], 2) for k in ("wall_us", "postgres_cpu_us", "wal_bytes")}
    print(
        f"ratio random / time-ordered, same run: wall {ratios['wall_us']}x, PostgreSQL CPU {ratios['postgres_cpu_us']}x, "
        f"WAL {ratios['wal_bytes']}x"
    )
    return {
        "benchmark": "inbox_claims",
        "history": args.history,
        "batch": args.batch,
        "keys_per_round": keys,
        "rounds": args.rounds,
        "per_key": best,
        "ratio_random_to_time_ordered": ratios,
    }


async def _bench(url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    engine = make_engine(url, pool_size=1)  # one connection: its backend's CPU is the statement's
    sessions = make_session_factory(engine)
    inbox = messaging_tables(sa.MetaData(schema="gateway")).inbox
    try:
        started = time.perf_counter()
        print(f"filling the inbox with {args.history:,} random keys ...")
        async with sessions() as session:
            await session.execute(
                sa.text(
                    "INSERT INTO gateway.inbox (consumer, source, event_id) "
                    "SELECT :consumer, :source, gen_random_uuid()::text FROM generate_series(1, :n)"
                ),
                {"consumer": CONSUMER, "source": SOURCE, "n": args.history},
            )
            await session.commit()
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE gateway.inbox"))
        print(f"  filled in {time.perf_counter() - started:.0f} s (setup, not measured)")
        best: dict[str, dict[str, float]] = {}
        for round_ in range(args.rounds):
            for kind, new_id in KINDS.items():
                cost = await _claims(engine, sessions, inbox, new_id, args.batch, args.claims)
                print(
                    f"  round {round_ + 1} {kind:<18} wall {cost['wall_us']:6.1f} µs/key, PostgreSQL CPU "
                    f"{cost['postgres_cpu_us']:6.1f} µs/key, WAL {cost['wal_bytes']:6.0f} B/key"
                )
                if kind not in best or cost["postgres_cpu_us"] < best[kind]["postgres_cpu_us"]:
                    best[kind] = cost
        return best
    finally:
        await engine.dispose()


async def _claims(
    engine, sessions: async_sessionmaker[AsyncSession], inbox: sa.Table, new_id: Callable[[], uuid.UUID], batch: int, n: int
) -> dict[str, float]:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("CHECKPOINT"))
    async with sessions() as session:
        backend = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        await session.commit()
    wal_before, cpu_before = await _wal(sessions), harness.cpu_seconds(backend)
    started = time.perf_counter()
    for _ in range(n):
        keys = [(SOURCE, str(new_id())) for _ in range(batch)]
        async with sessions() as session:
            [claimed] = await claim_many(session, inbox, [(CONSUMER, keys, ())])
            await session.commit()
        if len(claimed) != batch:
            raise AssertionError(f"{batch} new keys claimed, {len(claimed)} reported new")
    wall = time.perf_counter() - started
    cpu = harness.cpu_seconds(backend) - cpu_before
    wal = await _wal(sessions) - wal_before
    keys_total = batch * n
    return {
        "wall_us": round(wall / keys_total * 1e6, 1),
        "postgres_cpu_us": round(cpu / keys_total * 1e6, 1),
        "wal_bytes": round(wal / keys_total),
    }


async def _wal(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int((await session.execute(sa.text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))).scalar_one())
