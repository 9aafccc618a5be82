"""Lifecycle's facts consumer: CPU per event of the freshness stream, this tree against a baseline commit.

The stream is what `bench freshness` makes lifecycle consume: per new customer interaction's
`customer.created`, `purchase.recorded` (with its home and lines) and `customer.updated` (not a lifecycle
type: parsed and skipped), and clv's `customer.value_updated` a little later. It is fed as Kafka messages
(JSON bytes) through the inbox consumer's own `process` (parse, validate, claim, the facts handler, commit) in
batches of `--batch` messages, on a fresh migrated Postgres. The CPU of this process (load-independent, unlike
the wall time) is divided by the events fed, and so are PostgreSQL's backends' CPU and the WAL (since
2026-12-07); the statements per batch are printed as well.

The baseline (`--baseline`, a commit) runs the same stream in a child process with `shared/` and
`services/lifecycle/` of that commit first on its path, on a database of its own (bench/consumer_cpu.py).
`--profile FILE` writes a cProfile of this tree's run.
"""

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from bench import consumer_cpu

DEFAULT_BASELINE = "73b0635"  # main before issue 13's freshness work on lifecycle


def stream(customers: int, lag: int) -> list[tuple[str, bytes]]:
    """(topic, JSON) in arrival order: interaction's events per customer, clv's value `lag` customers later."""
    from shared.contracts import clv, interaction
    from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS

    now = datetime.now(UTC).replace(microsecond=0)
    ids = [uuid.uuid4() for _ in range(customers)]
    out: list[tuple[str, bytes]] = []

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
        return CLV_EVENTS, consumer_cpu.message(p, clv.SOURCE, cid)

    for i, cid in enumerate(ids):
        at = now - timedelta(seconds=customers - i)
        out.extend(
            (INTERACTION_EVENTS, consumer_cpu.message(p, interaction.SOURCE, cid))
            for p in consumer_cpu.new_customer_events(i, cid, at)
        )
        if i >= lag:
            out.append(value(ids[i - lag], at + timedelta(seconds=1)))
    out.extend(value(cid, now + timedelta(seconds=2)) for cid in ids[customers - lag :])
    return out


async def run(database_url: str, args: argparse.Namespace, profile: str | None) -> dict:
    from shared.messaging.inbox import InboxConsumer
    from shared.messaging.inprocess import InProcessTransport

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
    figures = await consumer_cpu.feed(runtime.engine, [consumer], stream(args.customers, args.lag), args.batch, profile)
    async with runtime.session_factory() as session:
        developed = (
            await session.execute(sa.text("SELECT count(*) FROM lifecycle.customer_stage WHERE stage = 'development'"))
        ).scalar()
    await runtime.engine.dispose()
    if developed != args.customers:
        raise AssertionError(f"{developed} of {args.customers} customers reached development")
    return figures


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench lifecycle_facts", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="new customers in the stream (4 events each)")
    parser.add_argument("--lag", type=int, default=100, help="customers between a purchase and its value update")
    consumer_cpu.add_arguments(parser, DEFAULT_BASELINE)
    args = parser.parse_args(argv)
    own = ["--customers", str(args.customers), "--lag", str(args.lag)]
    return {"customers": args.customers} | consumer_cpu.compare("lifecycle_facts", "lifecycle", args, run, own)
