"""Clv's interaction consumers: CPU per event of the freshness stream, this tree against a baseline commit.

The stream is what `bench freshness` makes clv consume from interaction's topic: per new customer
`customer.created` and `customer.updated` (not clv types: parsed and skipped) and `purchase.recorded` (with its
home and lines). It is fed as Kafka messages (JSON bytes) through the `process` (parse, validate, claim, the
handler, commit) of each inbox consumer the clv app has on that topic, in batches of `--batch` messages, on a
fresh migrated Postgres: two consumers before 2026-12-06 (`interaction_facts`: purchase rows, transaction
summaries, incremental scoring; `profitability`: orders, their cost parts), one since, applying both. The CPU of
this process (load-independent, unlike the wall time) is divided by the events of the stream, and so are
PostgreSQL's backends' CPU and the WAL (since 2026-12-07); the statements per batch of the stream are printed as well.

The baseline (`--baseline`, a commit) runs the same stream in a child process with `shared/` and
`services/clv/` of that commit first on its path, on a database of its own (bench/consumer_cpu.py).
`--profile FILE` writes a cProfile of this tree's run.
"""

import argparse
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench import consumer_cpu

DEFAULT_BASELINE = "77d741a"  # main before issue 13's freshness work on clv


def stream(customers: int) -> list[tuple[str, bytes]]:
    """(topic, JSON) in arrival order: interaction's events per new customer."""
    now = datetime.now(UTC).replace(microsecond=0)
    out: list[tuple[str, bytes]] = []
    for i in range(customers):
        cid = uuid.uuid4()
        at = now - timedelta(seconds=customers - i)
        out.extend(consumer_cpu.new_customer_messages(i, cid, at))
    return out


async def run(database_url: str, args: argparse.Namespace, profile: str | None) -> dict:
    from shared.contracts.topics import INTERACTION_EVENTS
    from shared.messaging.inprocess import InProcessTransport

    import clv.app
    from clv.settings import ClvSettings

    settings = ClvSettings(database_url=database_url, transport="inprocess", run_workers=False)
    runtime = clv.app.create_app(settings, InProcessTransport()).state.runtime
    consumers = [c for c in runtime.consumers if settings.topic_prefix + INTERACTION_EVENTS in c.topics]
    figures = await consumer_cpu.feed(runtime.engine, consumers, stream(args.customers), args.batch, profile)
    async with runtime.session_factory() as session:
        summaries = (await session.execute(sa.text("SELECT count(*) FROM clv.transaction_summary"))).scalar()
        orders = (await session.execute(sa.text("SELECT count(*) FROM clv.profit_order"))).scalar()
    await runtime.engine.dispose()
    if summaries != args.customers or orders != args.customers:
        raise AssertionError(f"{summaries} summaries, {orders} orders for {args.customers} customers")
    return figures


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench clv_facts", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="new customers in the stream (3 events each)")
    consumer_cpu.add_arguments(parser, DEFAULT_BASELINE)
    args = parser.parse_args(argv)
    own = ["--customers", str(args.customers)]
    return {"customers": args.customers} | consumer_cpu.compare("clv_facts", "clv", args, run, own)
