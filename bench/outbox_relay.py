"""The outbox relay's cost per published row: sent rows marked and pruned later, or deleted at once, side by side.

Every event a service publishes is a row of its outbox (`shared/messaging/outbox.py`), written in the change's
transaction and sent to Kafka by the relay. Until 2026-12-07 the relay marked each sent row (an UPDATE of
`sent_at`, which writes the whole row again, payload included, with new entries in two of its indexes) and
deleted it an hour later; since, it deletes the row as soon as Kafka has it (the in-process transport of the
embedded mode still keeps them: `retain_sent`). The benchmark writes `--rows` realistic rows (`purchase.recorded`
events, ~60 a transaction, after a CHECKPOINT; not measured), then measures the real relay sending them to the
real broker in batches of `--batch` (the services' relays sent ~115 a batch under `bench freshness`) right after
they are written (as in a deployment, within one checkpoint cycle), followed, for the marking kind, by the prune
that deletes them after a CHECKPOINT (`retention` 0: what the deployment pays an hour later, checkpoints since).
The two kinds alternate for `--rounds`; per row and kind it prints the CPU of PostgreSQL's backends, the WAL
written, this process's CPU (the relay and Kafka client: the same work both ways) and the wall time, the best
round of each by PostgreSQL CPU, and the ratio. Every row must reach the broker and leave the outbox, or the
benchmark raises.
"""

import argparse
import asyncio
import contextlib
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
import uvloop

from bench import harness
from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import asyncpg_dsn, make_engine, make_session_factory
from shared.messaging.kafka import KafkaTransport
from shared.messaging.outbox import Outbox, OutboxRelay
from tests.support import purchase_events

from interaction.tables import messaging

SCHEMA = "interaction"
GROUP = 60  # rows per writing transaction: an interaction group commit of single events
KINDS = {"marked, pruned later": True, "deleted when sent": False}  # → OutboxRelay(retain_sent=...)


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench outbox_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows relayed per kind and round")
    parser.add_argument("--batch", type=int, default=120, help="rows per relay batch")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the lowest PostgreSQL CPU of each kind is reported")
    args = parser.parse_args(argv)
    prefix = f"bench-outbox-{uuid.uuid4().hex[:8]}."
    with harness.servers() as (server_url, bootstrap), harness.database(server_url, [SCHEMA]) as url:
        with harness.topics(bootstrap, [prefix + INTERACTION_EVENTS]):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                best = runner.run(_bench(url, bootstrap, prefix, args))
    print(f"{args.rows:,} rows per kind and round, relay batches of {args.batch}, best of {args.rounds} by PostgreSQL CPU")
    print(f"{'sent rows':<22}{'PostgreSQL CPU µs/row':>23}{'WAL B/row':>11}{'relay CPU µs/row':>18}{'wall µs/row':>13}")
    for kind, b in best.items():
        print(f"{kind:<22}{b['postgres_cpu_us']:>23.1f}{b['wal_bytes']:>11.0f}{b['relay_cpu_us']:>18.1f}{b['wall_us']:>13.1f}")
    marked, deleted = best["marked, pruned later"], best["deleted when sent"]
    ratios = {k: round(marked[k] / deleted[k], 2) for k in ("postgres_cpu_us", "wal_bytes", "wall_us")}
    print(
        f"ratio marked / deleted, same run: PostgreSQL CPU {ratios['postgres_cpu_us']}x, WAL {ratios['wal_bytes']}x, "
        f"wall {ratios['wall_us']}x"
    )
    return {
        "benchmark": "outbox_relay",
        "rows": args.rows,
        "batch": args.batch,
        "rounds": args.rounds,
        "per_row": best,
        "ratio_marked_to_deleted": ratios,
    }


async def _bench(url: str, bootstrap: str, prefix: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    engine = make_engine(url, pool_size=2)
    sessions = make_session_factory(engine)
    transport = KafkaTransport(bootstrap, client_id="bench-outbox-relay")
    outbox = Outbox(messaging, SCHEMA, prefix)
    topic = prefix + INTERACTION_EVENTS
    try:
        best: dict[str, dict[str, float]] = {}
        for round_ in range(args.rounds):
            for kind, retain_sent in KINDS.items():
                events = purchase_events(args.rows, customers=max(1, args.rows // 4), seed=round_)
                await _checkpoint(engine)  # each kind's rows start on pages no earlier change has logged
                for i in range(0, len(events), GROUP):
                    async with sessions() as session, session.begin():
                        await outbox.add(session, INTERACTION_EVENTS, events[i : i + GROUP])
                relay = OutboxRelay(
                    engine=engine,
                    dsn=asyncpg_dsn(url),
                    tables=messaging,
                    schema=SCHEMA,
                    transport=transport,
                    batch_size=args.batch,
                    retain_sent=retain_sent,
                )
                cost = await _relay_all(engine, sessions, relay, transport, topic, args.rows)
                print(
                    f"  round {round_ + 1} {kind:<21} PostgreSQL CPU {cost['postgres_cpu_us']:5.1f} µs/row, WAL "
                    f"{cost['wal_bytes']:5.0f} B/row, relay CPU {cost['relay_cpu_us']:5.1f} µs/row, wall "
                    f"{cost['wall_us']:5.1f} µs/row"
                )
                if kind not in best or cost["postgres_cpu_us"] < best[kind]["postgres_cpu_us"]:
                    best[kind] = cost
        return best
    finally:
        await transport.stop()
        await engine.dispose()


async def _relay_all(engine, sessions, relay: OutboxRelay, transport: KafkaTransport, topic: str, rows: int) -> dict:
    """Relays what the outbox holds (written just before, as in a deployment: the same checkpoint cycle), then,
    for rows marked sent, prunes them after a CHECKPOINT (an hour later, checkpoints have run: the prune's first
    change to each page logs the whole page). The checkpoint is not measured."""
    on_broker = sum((await transport.end_offsets([topic])).values())
    sent, measured = 0, _Measured()
    async with measured.span(sessions):
        while n := await relay.relay_once():
            sent += n
    if relay.retain_sent:
        await _checkpoint(engine)
        relay.retention = timedelta(0)  # every row sent is past it
        async with measured.span(sessions):
            await relay._delete_old_sent()
    left = await _scalar(sessions, f"SELECT count(*) FROM {SCHEMA}.outbox")
    arrived = sum((await transport.end_offsets([topic])).values()) - on_broker
    if (sent, left, arrived) != (rows, 0, rows):
        raise AssertionError(f"{rows} rows written: {sent} relayed, {left} left in the outbox, {arrived} on the broker")
    return {
        "postgres_cpu_us": round(measured.postgres_cpu_s / rows * 1e6, 1),
        "wal_bytes": round(measured.wal_bytes / rows),
        "relay_cpu_us": round(measured.cpu_s / rows * 1e6, 1),
        "wall_us": round(measured.wall_s / rows * 1e6, 1),
    }


class _Measured:
    """The costs of the spans measured, added up: PostgreSQL's backends' CPU, WAL, this process's CPU, wall."""

    def __init__(self) -> None:
        self.postgres_cpu_s = self.cpu_s = self.wall_s = 0.0
        self.wal_bytes = 0

    @contextlib.asynccontextmanager
    async def span(self, sessions):
        before, cpu, started = await harness.server_cost(sessions), time.process_time(), time.perf_counter()
        yield
        self.wall_s += time.perf_counter() - started
        self.cpu_s += time.process_time() - cpu
        cost = harness.cost_since(before, await harness.server_cost(sessions))
        if cost["postgres_cpu_s"] is None:
            raise AssertionError("PostgreSQL's backends are not on this machine: their CPU cannot be read")
        self.postgres_cpu_s += cost["postgres_cpu_s"]
        self.wal_bytes += cost["wal_bytes"]


async def _checkpoint(engine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("CHECKPOINT"))


async def _scalar(sessions, sql: str) -> int:
    async with sessions() as session:
        return int((await session.execute(sa.text(sql))).scalar_one())
