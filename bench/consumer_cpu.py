"""What the consumer CPU benchmarks share (`lifecycle_facts`, `clv_facts`): a stream of events fed through
inbox consumers' own `process`, the CPU per event of this tree, and the same run with a baseline commit's code.

Each benchmark supplies its stream and a `run(database_url, args)` that builds its consumers and calls `feed`;
`compare` runs it `--rounds` times on this tree and, in a child process (`--child`), on the baseline commit's
`shared/` and `services/<service>/` extracted with `git archive`, each on a fresh migrated database, and prints
the best CPU per event of each and the ratio, with PostgreSQL's backends' CPU and the WAL per event of that run
(read from /proc: the server runs on this machine).
"""

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import harness
from shared.db import make_session_factory

Run = Callable[[str, argparse.Namespace, str | None], Awaitable[dict]]


def new_customer_events(i: int, cid: uuid.UUID, at: datetime) -> list[Any]:
    """What interaction publishes for a new customer's first order: created, the purchase (with its home and
    lines), updated."""
    from shared.contracts import interaction

    return [
        interaction.CustomerCreated(customer_id=cid, source="bench-shop", first_seen_at=at),
        interaction.PurchaseRecorded(
            customer_id=cid,
            purchase_id=uuid.uuid4(),
            source="bench-shop",
            order_id=f"o-{i}",
            amount=Decimal("59.90"),
            currency="EUR",
            channel="web",
            occurred_at=at,
            lines=[interaction.PurchaseLine(sku="sku-1", quantity=2, unit_price=Decimal("29.95"))],
            home_customer_id=cid,
        ),
        interaction.CustomerUpdated(
            customer_id=cid, source="bench-shop", attributes={"tier": "new"}, updated_at=at, version=i + 1
        ),
    ]


def new_customer_messages(i: int, cid: uuid.UUID, at: datetime) -> list[tuple[str, bytes]]:
    """`new_customer_events` as they arrive from interaction's topic: (topic, JSON)."""
    from shared.contracts import interaction
    from shared.contracts.topics import INTERACTION_EVENTS

    return [(INTERACTION_EVENTS, message(p, interaction.SOURCE, cid)) for p in new_customer_events(i, cid, at)]


def message(payload: Any, source: str, cid: uuid.UUID) -> bytes:
    """The event as it arrives from Kafka: its envelope's JSON."""
    from shared.contracts.envelope import Envelope

    return Envelope.wrap(payload, source=source, subject=str(cid), correlation_id=str(uuid.uuid4())).to_json()


async def feed(engine: Any, consumers: list, stream: list[tuple[str, bytes]], batch: int, profile: str | None) -> dict:
    """Feeds `stream` ((topic, JSON) in arrival order) to every consumer in batches of `batch`; the first two
    batches warm up (statements prepared, caches filled) and are not measured. CPU and wall time per event of
    the stream and SQL statements per batch of the stream, all consumers together (each reads every event)."""
    from shared.messaging.transport import IncomingMessage

    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    messages = [IncomingMessage(t, 0, i, None, v, []) for i, (t, v) in enumerate(stream)]
    warm = batch * 2
    for i in range(0, warm, batch):
        for consumer in consumers:
            await consumer.process(messages[i : i + batch])
    measured = messages[warm:]
    statements, batches = 0, 0
    profiler = cProfile.Profile() if profile else None
    sessions = make_session_factory(engine)
    server_before = await harness.server_cost(sessions)
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(0, len(measured), batch):
        batches += 1
        for consumer in consumers:
            await consumer.process(measured[i : i + batch])
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = harness.cost_since(server_before, await harness.server_cost(sessions))
    events = len(measured)
    return {
        "events": events,
        "batches": batches,
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "wall_us_per_event": round(wall / events * 1e6, 1),
        "statements_per_batch": round(statements / batches, 1),
        # PostgreSQL's backends (None when they are not on this machine) and the WAL, per event of the stream.
        "postgres_cpu_us_per_event": None if (pg := server["postgres_cpu_s"]) is None else round(pg / events * 1e6, 1),
        "wal_bytes_per_event": round(server["wal_bytes"] / events),
    }


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """The PostgreSQL server URL: `DATABASE_URL`'s, else one started now (no Kafka: nothing here uses it)."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    from deploy.local.postgres import PostgresServer

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        print("starting PostgreSQL ...")
        server = PostgresServer(Path(tmp) / "postgres")
        server.start()
        try:
            yield server.async_url("postgres")
        finally:
            server.stop()


def baseline(bench: str, service: str, ref: str, database_url: str, child_args: list[str]) -> dict:
    """The same run in a child process, with `shared/` and `services/<service>/` of commit `ref` first on its path."""
    with tempfile.TemporaryDirectory(prefix="crm-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", ref, "shared", f"services/{service}"], cwd=harness.REPO, check=True, capture_output=True
        ).stdout
        archive_path = Path(tmp) / "tree.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(Path(tmp) / "services" / service)])}
        probe = f"import shared, {service}; print(shared.__file__, {service}.__file__)"
        where = subprocess.run([sys.executable, "-c", probe], cwd=tmp, env=env, check=True, capture_output=True, text=True)
        if not all(path.startswith(tmp) for path in where.stdout.split()):
            raise RuntimeError(f"the baseline run would not import {ref}'s code: {where.stdout}")
        argv = [sys.executable, "-m", "bench", bench, "--child", database_url, *child_args]
        # In the extracted tree: `python -m` puts the working directory first on the path, before PYTHONPATH.
        out = subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def add_arguments(parser: argparse.ArgumentParser, baseline_ref: str) -> None:
    """The options every consumer CPU benchmark has (besides its own stream's)."""
    parser.add_argument("--batch", type=int, default=500, help="messages per consumed batch (the inbox's batch_size)")
    parser.add_argument("--baseline", default=baseline_ref, help="commit to compare with ('' for none)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree; the lowest CPU is reported")
    parser.add_argument("--profile", help="write a cProfile of this tree's (last) run to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a database URL: one run of the tree on the path


def compare(bench: str, service: str, args: argparse.Namespace, run: Run, child_args: list[str]) -> dict:
    """`run` on this tree and on `--baseline` (`child_args`: the benchmark's own options, passed on), best of
    `--rounds` each; or, with `--child`, one run of the tree on the path."""
    harness.internal_keys()
    if args.child:
        return asyncio.run(run(args.child, args, None))
    figures: dict = {"benchmark": bench, "batch": args.batch}
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    trees = {"this tree": None, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    with postgres() as server_url:
        for name, ref in trees.items():
            best: dict | None = None
            for r in range(args.rounds):
                with harness.database(server_url, [service]) as database_url:
                    if ref is None:
                        profile = args.profile if r == args.rounds - 1 else None
                        row = asyncio.run(run(database_url, args, profile))
                    else:
                        row = baseline(bench, service, ref, database_url, [*child_args, "--batch", str(args.batch)])
                if best is None or row["cpu_us_per_event"] < best["cpu_us_per_event"]:
                    best = row
            figures[name] = best
    print(f"{args.batch} messages a batch; best of {args.rounds}")
    print(
        f"{'tree':<20}{'CPU µs/event':>14}{'wall µs/event':>15}{'statements/batch':>18}"
        f"{'PostgreSQL CPU µs/event':>25}{'WAL B/event':>13}"
    )
    for name in trees:
        r = figures[name]
        # A baseline run by the code of before this column existed has no figure for it.
        pg, wal = r.get("postgres_cpu_us_per_event"), r.get("wal_bytes_per_event")
        print(
            f"{name:<20}{r['cpu_us_per_event']:>14.0f}{r['wall_us_per_event']:>15.0f}{r['statements_per_batch']:>18.1f}"
            f"{'—' if pg is None else f'{pg:.0f}':>25}{'—' if wal is None else wal:>13}"
        )
    if args.baseline:
        ratio = figures[f"baseline {args.baseline}"]["cpu_us_per_event"] / figures["this tree"]["cpu_us_per_event"]
        figures["cpu_ratio"] = round(ratio, 2)
        print(f"CPU per event: baseline / this tree = {ratio:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return figures
