"""Clv's interaction consumers: CPU per event of the freshness stream, this tree against a baseline commit.

The stream is what `bench freshness` makes clv consume from interaction's topic: per new customer
`customer.created` and `customer.updated` (not clv types: parsed and skipped) and `purchase.recorded` (with its
home and lines). It is fed as Kafka messages (JSON bytes) through both inbox consumers' own `process` (parse,
validate, claim, the handler, commit): `interaction_facts` (purchase rows, transaction summaries, incremental
scoring) and `profitability` (orders, their cost parts), in batches of `--batch` messages, on a fresh migrated
Postgres. The CPU of this process (load-independent, unlike the wall time) is divided by the events fed, once
per consumer (both read every event). Postgres' own CPU is not counted, so the statements per batch are printed
as well.

The baseline (`--baseline`, a commit) runs the same stream in a child process with `shared/` and
`services/clv/` of that commit first on its path, on a database of its own. `--profile FILE` writes a
cProfile of this tree's run.
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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from bench import harness

DEFAULT_BASELINE = "77d741a"  # main before issue 13's freshness work on clv


def stream(customers: int) -> list[tuple[str, bytes]]:
    """(topic, JSON) in arrival order: interaction's events per new customer."""
    from shared.contracts import interaction
    from shared.contracts.envelope import Envelope
    from shared.contracts.topics import INTERACTION_EVENTS

    now = datetime.now(UTC).replace(microsecond=0)
    out: list[tuple[str, bytes]] = []
    for i in range(customers):
        cid = uuid.uuid4()
        at = now - timedelta(seconds=customers - i)
        for p in (
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
            interaction.CustomerUpdated(customer_id=cid, source="bench-shop", attributes={"tier": "new"}, updated_at=at),
        ):
            env = Envelope.wrap(p, source=interaction.SOURCE, subject=str(cid), correlation_id=str(uuid.uuid4()))
            out.append((INTERACTION_EVENTS, env.to_json()))
    return out


async def run(database_url: str, customers: int, batch: int, profile: str | None) -> dict:
    from shared.messaging.inbox import InboxConsumer
    from shared.messaging.inprocess import InProcessTransport
    from shared.messaging.transport import IncomingMessage

    import clv.app
    from clv.profitability.projection import profitability_subscription
    from clv.settings import ClvSettings
    from clv.transaction_summary.projection import interaction_subscription

    settings = ClvSettings(database_url=database_url, transport="inprocess", run_workers=False)
    runtime = clv.app.create_app(settings, InProcessTransport()).state.runtime
    consumers = [
        InboxConsumer(
            group_id=f"clv.{subscription.name}",
            inbox_name=f"clv.{subscription.name}",
            subscription=subscription,
            topic_prefix="",
            transport=InProcessTransport(),
            session_factory=runtime.session_factory,
            tables=runtime.tables,
        )
        for subscription in (interaction_subscription(runtime.outbox, settings), profitability_subscription())
    ]
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    messages = [IncomingMessage(t, 0, i, None, v, []) for i, (t, v) in enumerate(stream(customers))]
    warm = batch * 2  # the first batches prepare statements and fill caches: not measured
    for i in range(0, warm, batch):
        for consumer in consumers:
            await consumer.process(messages[i : i + batch])
    measured = messages[warm:]
    statements, batches = 0, 0
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(0, len(measured), batch):
        for consumer in consumers:
            await consumer.process(measured[i : i + batch])
            batches += 1
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    async with runtime.session_factory() as session:
        summaries = (await session.execute(sa.text("SELECT count(*) FROM clv.transaction_summary"))).scalar()
        orders = (await session.execute(sa.text("SELECT count(*) FROM clv.profit_order"))).scalar()
    await runtime.engine.dispose()
    if summaries != customers or orders != customers:
        raise AssertionError(f"{summaries} summaries, {orders} orders for {customers} customers")
    events = len(measured) * len(consumers)
    return {
        "events": events,
        "batches": batches,
        "cpu_us_per_event": round(cpu / events * 1e6, 1),
        "wall_us_per_event": round(wall / events * 1e6, 1),
        "statements_per_batch": round(statements / batches, 1),
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


def baseline(ref: str, database_url: str, args: argparse.Namespace) -> dict:
    """The same run in a child process, with `shared/` and `services/clv/` of commit `ref` first on its path."""
    with tempfile.TemporaryDirectory(prefix="crm-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", ref, "shared", "services/clv"], cwd=harness.REPO, check=True, capture_output=True
        ).stdout
        archive_path = Path(tmp) / "tree.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(Path(tmp) / "services" / "clv")])}
        probe = "import shared, clv; print(shared.__file__, clv.__file__)"
        where = subprocess.run([sys.executable, "-c", probe], cwd=tmp, env=env, check=True, capture_output=True, text=True)
        if not all(path.startswith(tmp) for path in where.stdout.split()):
            raise RuntimeError(f"the baseline run would not import {ref}'s code: {where.stdout}")
        argv = [sys.executable, "-m", "bench", "clv_facts", "--child", database_url]
        argv += ["--customers", str(args.customers), "--batch", str(args.batch)]
        # In the extracted tree: `python -m` puts the working directory first on the path, before PYTHONPATH.
        out = subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench clv_facts", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="new customers in the stream (3 events each)")
    parser.add_argument("--batch", type=int, default=500, help="messages per consumed batch (the inbox's batch_size)")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with ('' for none)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree; the lowest CPU is reported")
    parser.add_argument("--profile", help="write a cProfile of this tree's (last) run to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a database URL: one run of the tree on the path
    args = parser.parse_args(argv)
    harness.internal_keys()
    if args.child:
        return asyncio.run(run(args.child, args.customers, args.batch, None))
    figures: dict = {"benchmark": "clv_facts", "customers": args.customers, "batch": args.batch}
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    trees = {"this tree": None, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    with postgres() as server_url:
        for name, ref in trees.items():
            best: dict | None = None
            for r in range(args.rounds):
                with harness.database(server_url, ["clv"]) as database_url:
                    if ref is None:
                        last = r == args.rounds - 1
                        row = asyncio.run(run(database_url, args.customers, args.batch, args.profile if last else None))
                    else:
                        row = baseline(ref, database_url, args)
                if best is None or row["cpu_us_per_event"] < best["cpu_us_per_event"]:
                    best = row
            figures[name] = best
    print(f"{args.customers} new customers, {args.batch} messages a batch; best of {args.rounds}")
    print(f"{'tree':<20}{'CPU µs/event':>14}{'wall µs/event':>15}{'statements/batch':>18}")
    for name in trees:
        r = figures[name]
        print(f"{name:<20}{r['cpu_us_per_event']:>14.0f}{r['wall_us_per_event']:>15.0f}{r['statements_per_batch']:>18.1f}")
    if args.baseline:
        ratio = figures[f"baseline {args.baseline}"]["cpu_us_per_event"] / figures["this tree"]["cpu_us_per_event"]
        figures["cpu_ratio"] = round(ratio, 2)
        print(f"CPU per event: baseline / this tree = {ratio:.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    return figures
