"""Inbox consumer throughput: purchase.recorded events/s from Kafka into Postgres, on the real broker and database.

N envelopes are produced once to a fresh topic; then, per batch size, a fresh consumer group folds them into
`segmentation.purchase_summary` through the service's own `InboxConsumer` and projection. Batch size 1 on a
subset is the per-event reference (one fetch, one transaction, one offset commit per event). Each batch size runs
once per offset-commit interval of `--commit-intervals` (0: a commit after every batch, as before 2026-12-07; the
consumer's default since: `COMMIT_INTERVAL_S`), side by side, with the offset commits made and this process's
CPU per event. Throughput is steady state: from the first fetched batch to the last applied event (group join is
reported as start-up). Every run is checked against the produced data; a wrong answer fails the benchmark.
"""

import argparse
import asyncio
import dataclasses
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import harness
from shared.contracts.envelope import Envelope
from shared.contracts.interaction import SOURCE, PurchaseRecorded
from shared.contracts.topics import INTERACTION_EVENTS
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import COMMIT_INTERVAL_S

from segmentation.purchase_summary.models import purchase_summary
from segmentation.purchase_summary.projection import purchases_subscription
from segmentation.tables import messaging

INBOX = "segmentation.interaction_facts"
PHASES = ["fetch", "parse", "claim", "upsert", "tx", "offsets", "other"]
PHASE_HELP = (
    "fetch = getmany, parse = Envelope.from_kafka + payload validation, claim = inbox insert, "
    "upsert = apply_purchases, tx = session/begin/commit, "
    "offsets = Kafka offset commit (overlaps the next batch; not in the sum), "
    "other = the rest (event loop, aiokafka background fetch decoding)"
)


@dataclasses.dataclass(frozen=True)
class Produced:
    count: int
    customers: int
    spend: Decimal


@dataclasses.dataclass
class Run:
    batch_size: int
    commit_interval_s: float
    events: int
    seconds: float
    startup_s: float
    batch_seconds: list[float]
    split: dict[str, float]
    commits: int
    cpu_s: float  # this process's, steady state: the consumer, its aiokafka client and asyncpg

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench messaging", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events produced and consumed per batch size")
    parser.add_argument("--batch-sizes", default="100,500,2000", help="comma-separated consumer batch sizes")
    parser.add_argument("--naive-events", type=int, default=5_000, help="events the per-event reference consumes")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the topic (the broker default)")
    parser.add_argument(
        "--commit-intervals",
        default=f"0,{COMMIT_INTERVAL_S}",
        help="comma-separated offset-commit intervals (s) each batch size runs with (0: after every batch)",
    )
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    intervals = [float(i) for i in args.commit_intervals.split(",")]
    naive_events = min(args.naive_events, args.events)
    prefix = f"bench{uuid.uuid4().hex[:8]}."

    with (
        harness.servers() as (server_url, bootstrap),
        harness.database(server_url, ["segmentation"]) as url,
        harness.topics(bootstrap, [prefix + INTERACTION_EVENTS], args.partitions),
    ):
        runs, naive = asyncio.run(_bench(url, bootstrap, prefix, args.events, batch_sizes, intervals, naive_events))

    best = max(runs, key=lambda r: r.events_per_s)
    _print_table([*runs, naive])
    speedup = best.events_per_s / naive.events_per_s
    print(f"best batched (batch {best.batch_size}) vs per-event: {speedup:.1f}x")
    commit_ratios = _commit_ratios(runs)
    return {
        "benchmark": "messaging",
        "events": args.events,
        "partitions": args.partitions,
        "results": [_figures(r) for r in runs],
        "naive_events": naive_events,
        "naive_events_per_s": round(naive.events_per_s, 1),
        "speedup_vs_naive": round(speedup, 2),
        "coalesced_commits_vs_every_batch": commit_ratios,
        "time_split": {"batch_size": best.batch_size, **{f"{p}_s": round(best.split[p], 3) for p in PHASES}},
    }


async def _bench(
    url: str, bootstrap: str, prefix: str, events: int, batch_sizes: list[int], intervals: list[float], naive_events: int
) -> tuple[list[Run], Run]:
    produced = await _produce(bootstrap, prefix + INTERACTION_EVENTS, events)
    engine = make_engine(url)
    try:
        runs = []
        for batch_size in batch_sizes:
            for interval in intervals:
                runs.append(await _consume(engine, bootstrap, prefix, batch_size, interval, events))
                await _verify(engine, produced.count, produced.customers, produced.spend)
        naive = await _consume(engine, bootstrap, prefix, 1, 0.0, naive_events)
        await _verify(engine, naive_events)
        return runs, naive
    finally:
        await engine.dispose()


async def _produce(bootstrap: str, topic: str, count: int) -> Produced:
    """`count` purchases over count/5 customers, as the interaction service's outbox would publish them."""
    rng = random.Random(42)
    customers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(max(1, count // 5))]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    messages, spend = [], Decimal(0)
    for i in range(count):
        customer = rng.choice(customers)
        amount = Decimal(rng.randrange(100, 50_000)) / 100
        spend += amount
        payload = PurchaseRecorded(
            customer_id=customer,
            purchase_id=uuid.uuid4(),
            source="partner-a",
            order_id=f"o-{i}",
            amount=amount,
            currency="EUR",
            channel="web",
            occurred_at=start + timedelta(seconds=i),
        )
        envelope = Envelope.wrap(payload, source=SOURCE, subject=str(customer))
        messages.append((str(customer).encode(), envelope.to_json()))

    print(f"producing {count:,} events to {topic} ...")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        acks = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*acks)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    print(
        f"produced {count:,} events ({sum(len(v) for _, v in messages) / count:.0f} B each) in {seconds:.1f}s "
        f"({count / seconds:,.0f}/s)"
    )
    return Produced(count, len({k for k, _ in messages}), spend)


async def _consume(
    engine: AsyncEngine, bootstrap: str, prefix: str, batch_size: int, commit_interval_s: float, expected: int
) -> Run:
    """One fresh consumer group over emptied tables, stopped once `expected` events went through."""
    async with engine.begin() as conn:
        # The projection re-derives summaries from the purchase rows it keeps, so those go too: each run starts empty.
        await conn.execute(
            sa.text(
                f"TRUNCATE {messaging.inbox.fullname}, {purchase_summary.fullname}, "
                "segmentation.purchase, segmentation.purchase_refund, segmentation.touchpoint, "
                "segmentation.customer_aggregate"
            )
        )
    watch = harness.Stopwatch()
    consumer = harness.TimedInboxConsumer(
        expected=expected,
        watch=watch,
        handler_phase="upsert",
        group_id=f"{prefix}{INBOX}.b{batch_size}.{uuid.uuid4().hex[:6]}",
        inbox_name=INBOX,
        subscription=purchases_subscription(),
        topic_prefix=prefix,
        transport=harness.TimedKafkaTransport(bootstrap, watch),
        session_factory=make_session_factory(engine),
        tables=messaging,
        batch_size=batch_size,
        commit_interval_s=commit_interval_s,
    )
    label = f"batch size {batch_size}, commits every {commit_interval_s:g} s"
    print(f"{label}: consuming {expected:,} events ...")
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.done.wait(), timeout=120 + expected / 200)
    except TimeoutError:
        consumer.stop()
        raise RuntimeError(f"{label}: only {consumer.seen:,} of {expected:,} events arrived before the timeout") from None
    finally:
        await task
    run = Run(
        batch_size,
        commit_interval_s,
        consumer.seen,
        consumer.finished_at - consumer.first_at,
        consumer.first_at - started,
        consumer.batch_seconds,
        _split(watch.totals, consumer.finished_at - consumer.first_at),
        consumer.commits,
        consumer.cpu_at_finish - consumer.cpu_at_first,
    )
    print(f"{label}: {run.events_per_s:,.0f} events/s ({run.seconds:.2f}s, start-up {run.startup_s:.2f}s)")
    return run


def _split(totals: dict[str, float], wall: float) -> dict[str, float]:
    """Exclusive seconds per phase; `tx` is `_apply` minus what claim and upsert took inside it."""
    split = {p: totals.get(p, 0.0) for p in ["fetch", "parse", "claim", "upsert", "offsets"]}
    split["tx"] = totals.get("apply", 0.0) - split["claim"] - split["upsert"]
    # Offset commits run alongside the next batch (see InboxConsumer.run), so they are not part of the sum.
    split["other"] = wall - sum(v for k, v in split.items() if k != "offsets")
    return split


async def _verify(engine: AsyncEngine, events: int, customers: int | None = None, spend: Decimal | None = None) -> None:
    """The projection must hold exactly what was consumed: one inbox row and one order per event."""
    t = purchase_summary
    async with engine.connect() as conn:
        inbox_rows = await conn.scalar(
            sa.select(sa.func.count()).select_from(messaging.inbox).where(messaging.inbox.c.consumer == INBOX)
        )
        orders, summaries, total = (
            await conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(t.c.order_count), 0),
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(t.c.total_spend), 0),
                )
            )
        ).one()
    checks = [
        ("inbox rows", events, inbox_rows),
        ("sum(order_count)", events, orders),
        ("customers", customers, summaries),
        ("sum(total_spend)", spend, total),
    ]
    wrong = [f"{name}: expected {want}, got {got}" for name, want, got in checks if want is not None and want != got]
    if wrong:
        raise RuntimeError("messaging benchmark computed a wrong answer: " + "; ".join(wrong))


def _figures(run: Run) -> dict:
    return {
        "batch_size": run.batch_size,
        "commit_interval_s": run.commit_interval_s,
        "commits": run.commits,
        "cpu_us_per_event": round(run.cpu_s / max(run.events, 1) * 1e6, 1),
        "events_per_s": round(run.events_per_s, 1),
        "seconds": round(run.seconds, 3),
        "startup_s": round(run.startup_s, 3),
        "batch_p50_ms": round(harness.percentile(run.batch_seconds, 50) * 1000, 2),
        "batch_p99_ms": round(harness.percentile(run.batch_seconds, 99) * 1000, 2),
    }


def _print_table(runs: list[Run]) -> None:
    header = (
        f"{'batch':>6} {'commit s':>8} {'commits':>8} {'events':>7} {'events/s':>9} {'CPU µs/ev':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7}  " + " ".join(f"{p:>7}" for p in PHASES)
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in runs:
        f = _figures(r)
        shares = " ".join(f"{r.split[p] / r.seconds:>7.0%}" for p in PHASES)
        print(
            f"{r.batch_size:>6} {r.commit_interval_s:>8g} {r.commits:>8,} {r.events:>7,} {r.events_per_s:>9,.0f} "
            f"{f['cpu_us_per_event']:>9.1f} {f['batch_p50_ms']:>7.1f} {f['batch_p99_ms']:>7.1f}  {shares}"
        )
    print(f"share of steady-state wall time per phase: {PHASE_HELP}\n")


def _commit_ratios(runs: list[Run]) -> dict[str, dict[str, float]]:
    """Per batch size: commits after every batch (interval 0) over the longest interval run, same run."""
    out = {}
    for size in sorted({r.batch_size for r in runs}):
        each = [r for r in runs if r.batch_size == size]
        every, coalesced = min(each, key=lambda r: r.commit_interval_s), max(each, key=lambda r: r.commit_interval_s)
        if every is coalesced or not coalesced.cpu_s or not coalesced.events_per_s:
            continue
        cpu = (every.cpu_s / every.events) / (coalesced.cpu_s / coalesced.events)
        out[str(size)] = {
            "commits": f"{every.commits} vs {coalesced.commits}",
            "cpu_per_event": round(cpu, 2),
            "events_per_s": round(coalesced.events_per_s / every.events_per_s, 2),
        }
        print(
            f"batch {size}: commits every {coalesced.commit_interval_s:g} s against after every batch, same run: "
            f"{coalesced.commits} vs {every.commits} commits, {cpu:.2f}x less CPU per event, "
            f"{coalesced.events_per_s / every.events_per_s:.2f}x the events/s"
        )
    return out
