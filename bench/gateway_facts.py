"""The gateway's consumers of the domain topics: CPU per event of the freshness stream, this tree against a baseline.

The stream is what the domain services publish for a new customer's first order in `bench freshness`: from
interaction `customer.created`, `purchase.recorded` (with its home and lines) and `customer.updated`, then
lifecycle's `stage.changed` and clv's `customer.value_updated`. It is fed as Kafka messages (JSON bytes) through
the `process` (parse, validate, claim, the handlers, commit) of each inbox consumer the gateway app has, in
batches of `--batch` messages, on a fresh migrated Postgres with one webhook subscription (to
`stage.changed`, so the webhooks' handler enqueues a delivery per customer): two consumers before 2026-12-06
(webhooks, the customer-view copy), one since, applying both. The CPU of this process is divided by the events
of the stream, and so are PostgreSQL's backends' CPU and the WAL (since 2026-12-07); the statements per batch
of the stream are printed as well. Since 2026-12-07 the view copy's part is idempotent: its events are not claimed.
"""

import argparse
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from bench import consumer_cpu

DEFAULT_BASELINE = "44c71e5"  # main before the gateway's consumers were merged


def stream(customers: int) -> list[tuple[str, bytes]]:
    """(topic, JSON) in arrival order: each new customer's events on the four domain topics."""
    from shared.contracts import clv, lifecycle
    from shared.contracts.topics import CLV_EVENTS, LIFECYCLE_EVENTS

    now = datetime.now(UTC).replace(microsecond=0)
    out: list[tuple[str, bytes]] = []
    for i in range(customers):
        cid = uuid.uuid4()
        at = now - timedelta(seconds=customers - i)
        out.extend(consumer_cpu.new_customer_messages(i, cid, at))
        stage = lifecycle.StageChanged(
            customer_id=cid, from_stage=None, to_stage="acquisition", changed_at=at, reason="first purchase", version=1
        )
        out.append((LIFECYCLE_EVENTS, consumer_cpu.message(stage, lifecycle.SOURCE, cid)))
        value = clv.CustomerValueUpdated(
            customer_id=cid,
            currency="EUR",
            historical_value=Decimal("18.00"),
            current_value=Decimal("40.00"),
            potential_value=Decimal("12.00"),
            clv=Decimal("58.00"),
            probability_alive=0.9,
            expected_purchases=1.5,
            tier="bronze",
            as_of=at,
            version=1,
        )
        out.append((CLV_EVENTS, consumer_cpu.message(value, clv.SOURCE, cid)))
    return out


async def run(database_url: str, args: argparse.Namespace, profile: str | None) -> dict:
    from shared.messaging.inprocess import InProcessTransport

    import gateway.app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(database_url=database_url, transport="inprocess", run_workers=False)
    runtime = gateway.app.create_app(settings, InProcessTransport()).state.runtime
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO gateway.webhook_subscription (id, url, event_types, secret) "
                "VALUES (:id, 'https://hooks.example.com/crm', ARRAY['stage.changed'], 's')"
            ),
            {"id": uuid.uuid4()},
        )
    figures = await consumer_cpu.feed(runtime.engine, runtime.consumers, stream(args.customers), args.batch, profile)
    async with runtime.session_factory() as session:
        views = (await session.execute(sa.text("SELECT count(*) FROM gateway.customer_view_copy"))).scalar()
        deliveries = (await session.execute(sa.text("SELECT count(*) FROM gateway.webhook_delivery"))).scalar()
    await runtime.engine.dispose()
    if deliveries != args.customers:
        raise AssertionError(f"{deliveries} webhook deliveries for {args.customers} customers")
    return figures | {"view_rows": views}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench gateway_facts", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000, help="new customers in the stream (5 events each)")
    consumer_cpu.add_arguments(parser, DEFAULT_BASELINE)
    args = parser.parse_args(argv)
    own = ["--customers", str(args.customers)]
    return {"customers": args.customers} | consumer_cpu.compare("gateway_facts", "gateway", args, run, own)
