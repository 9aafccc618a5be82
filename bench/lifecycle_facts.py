"""Lifecycle's facts consumer: CPU per event of the freshness stream, this tree against a baseline commit.

The stream is what `bench freshness` makes lifecycle consume: per new customer interaction's
`customer.created`, `purchase.recorded` (with its home and lines) and `customer.updated` (not a lifecycle
type: parsed and skipped), and clv's `customer.value_updated` a little later. It is fed as Kafka messages
(JSON bytes) through the inbox consumer's own `process` (parse, validate, claim, the facts handler, commit) in
batches of `--batch` messages, on a fresh migrated Postgres. The CPU of this process (load-independent, unlike
the wall time) is divided by the events fed. Postgres' own CPU is not counted, so the statements per batch are
printed as well.

The baseline (`--baseline`, a commit) runs the same stream in a child process with `shared/` and
`services/lifecycle/` of that commit first on its path, on a database of its own. `--profile FILE` writes a
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

DEFAULT_BASELINE = "73b0635"  # main before issue 13's freshness work on lifecycle


def stream(customers: int, lag: int) -> list[tuple[str, bytes]]:
    """(topic, JSON) in arrival order: interaction's events per customer, clv's value `lag` customers later."""
    from shared.contracts import clv, interaction
    from shared.contracts.envelope import Envelope
    from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS

    now = datetime.now(UTC).replace(microsecond=0)
    ids = [uuid.uuid4() for _ in range(customers)]
    out: list[tuple[str, bytes]] = []

    def wrap(payload: interaction.Payload, source: str, cid: uuid.UUID) -> bytes:
        return Envelope.wrap(payload, source=source, subject=str(cid), correlation_id=str(uuid.uuid4())).to_json()

    def value(cid: uuid.UUID, at: datetime) -> tuple[str, bytes]:
        p = clv.CustomerValueUpdated(
            customer_id=cid,
            currency="EUR",
            historical_value=Decimal("12.5"),
            current_value=Decimal("30.1"),
            potential_value=Decimal("4.2"),
            clv=Decimal("42.6"),
            probability_alive=0.93,
            expected_purchases=1.4,
            tier="silver",
            model_version="bench",
            as_of=at,
            version=1,
        )
        return CLV_EVENTS, wrap(p, clv.SOURCE, cid)

    for i, cid in enumerate(ids):
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
            out.append((INTERACTION_EVENTS, wrap(p, interaction.SOURCE, cid)))
        if i >= lag:
            out.append(value(ids[i - lag], at + timedelta(seconds=1)))
    out.extend(value(cid, now + timedelta(seconds=2)) for cid in ids[customers - lag :])
    return out


async def run(database_url: str, customers: int, lag: int, batch: int, profile: str | None) -> dict:
    from shared.messaging.inbox import InboxConsumer
    from shared.messaging.inprocess import InProcessTransport
    from shared.messaging.transport import IncomingMessage

    import lifecycle.app
    from lifecycle.settings import LifecycleSettings
    from lifecycle.stages.projection import facts_subscription

    settings = LifecycleSettings(database_url=database_url, transport="inprocess", run_workers=False, sweep_interval_s=0)
    runtime = lifecycle.app.create_app(settings, InProcessTransport()).state.runtime
    consumer = InboxConsumer(
        group_id="lifecycle.facts",
        inbox_name="facts",
        subscription=facts_subscription(runtime.outbox),
        topic_prefix="",
        transport=InProcessTransport(),
        session_factory=runtime.session_factory,
        tables=runtime.tables,
    )
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    messages = [IncomingMessage(t, 0, i, None, v, []) for i, (t, v) in enumerate(stream(customers, lag))]
    warm = batch * 2  # the first batches prepare statements and fill caches: not measured
    for i in range(0, warm, batch):
        await consumer.process(messages[i : i + batch])
    measured = messages[warm:]
    statements, batches = 0, 0
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for i in range(0, len(measured), batch):
        await consumer.process(measured[i : i + batch])
        batches += 1
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    async with runtime.session_factory() as session:
        developed = (
            await session.execute(sa.text("SELECT count(*) FROM lifecycle.customer_stage WHERE stage = 'development'"))
        ).scalar()
    await runtime.engine.dispose()
    if developed != customers:
        raise AssertionError(f"{developed} of {customers} customers reached development")
    return {
        "events": len(measured),
        "batches": batches,
        "cpu_us_per_event": round(cpu / len(measured) * 1e6, 1),
        "wall_us_per_event": round(wall / len(measured) * 1e6, 1),
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
    """The same run in a child process, with `shared/` and `services/lifecycle/` of commit `ref` first on its path."""
    with tempfile.TemporaryDirectory(prefix="crm-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", ref, "shared", "services/lifecycle"], cwd=harness.REPO, check=True, capture_output=True
        ).stdout
        archive_path = Path(tmp) / "tree.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(Path(tmp) / "services" / "lifecycle")])}
        probe = "import shared, lifecycle; print(shared.__file__, lifecycle.__file__)"
        where = subprocess.run([sys.executable, "-c", probe], cwd=tmp, env=env, check=True, capture_output=True, text=True)
        if not all(path.startswith(tmp) for path in where.stdout.split()):
            raise RuntimeError(f"the baseline run would not import {ref}'s code: {where.stdout}")
        argv = [sys.executable, "-m", "bench", "lifecycle_facts", "--child", database_url]
        argv += ["--customers", str(args.customers), "--lag", str(args.lag), "--batch", str(args.batch)]
        # In the extracted tree: `python -m` puts the working directory first on the path, before PYTHONPATH.
        out = subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench lifecycle_facts", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="new customers in the stream (4 events each)")
    parser.add_argument("--lag", type=int, default=100, help="customers between a purchase and its value update")
    parser.add_argument("--batch", type=int, default=500, help="messages per consumed batch (the inbox's batch_size)")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with ('' for none)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree; the lowest CPU is reported")
    parser.add_argument("--profile", help="write a cProfile of this tree's (last) run to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a database URL: one run of the tree on the path
    args = parser.parse_args(argv)
    harness.internal_keys()
    if args.child:
        return asyncio.run(run(args.child, args.customers, args.lag, args.batch, None))
    figures: dict = {"benchmark": "lifecycle_facts", "customers": args.customers, "batch": args.batch}
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    trees = {"this tree": None, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    with postgres() as server_url:
        for name, ref in trees.items():
            best: dict | None = None
            for r in range(args.rounds):
                with harness.database(server_url, ["lifecycle"]) as database_url:
                    if ref is None:
                        last = r == args.rounds - 1
                        row = asyncio.run(run(database_url, args.customers, args.lag, args.batch, args.profile if last else None))
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
