"""Partner events on Kafka → interaction: durable, deduplicated, identities resolved, traits updated (goal P1).

N partner events (a realistic mix: orders, refunds, cancellations, touchpoints, feedback, identifications
that link customers across partners and so merge them, leads, consent, deals; about 5% resent duplicates)
are produced once to a fresh `partner.events` topic. Then the interaction service's own inbox consumer and
ingestion code drain it in batches, with the outbox relay publishing `interaction.events` alongside, as in
the service process. Throughput is steady state, from the first fetched batch to the last applied event;
the consumer lag (events produced but not yet applied) is sampled every half second. Every run is checked
against the produced data (rows, dedup, spend net of refunds); a wrong answer fails the benchmark.
"""

import argparse
import asyncio
import dataclasses
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import harness
from shared.contracts.topics import INTERACTION_EVENTS, PARTNER_EVENTS
from shared.db import asyncpg_dsn, make_engine, make_session_factory
from shared.messaging.outbox import Outbox, OutboxRelay

from interaction.ingestion.consumer import partner_ingest_subscription
from interaction.ingestion.service import INGEST_INBOX
from interaction.settings import SCHEMA
from interaction.tables import messaging

GOAL = 20_000
PARTNERS = ["shop-eu", "crm", "support-desk"]
INBOX_PHASES = ["fetch", "parse", "claim", "tx"]
HANDLER_PHASES = ["check", "resolve", "prepare", "activity", "purchases", "adjustments", "other facts", "traits", "outbox"]


@dataclasses.dataclass
class Produced:
    events: int  # distinct events (duplicates excluded)
    sent: int  # messages on the topic
    orders: int
    cancelled_orders: int
    net_spend: Decimal


def generate(n: int, seed: int = 7) -> tuple[list[tuple[bytes, bytes]], Produced]:
    """A realistic partner stream over n/8 people; some people are known to two partners and get linked by email."""
    rng = random.Random(seed)
    people = max(10, n // 8)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    messages: list[tuple[bytes, bytes]] = []
    orders: dict[str, tuple[str, str, Decimal]] = {}  # order id -> (partner, partner's customer id, amount)
    refunds: dict[str, list[Decimal | None]] = {}
    cancelled: set[str] = set()
    distinct = 0

    def subject(person: int) -> tuple[str, str]:
        # Most people are known to one partner; every 5th also to the crm, under the crm's own id.
        source = "crm" if person % 5 == 0 and rng.random() < 0.5 else PARTNERS[person % 2 * 2]
        return source, f"{source[:2].upper()}-{person}"

    def send(source: str, subj: str, type_: str, data: dict) -> None:
        nonlocal distinct
        event = {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": source,
            "type": type_,
            "subject": subj,
            "time": (start + timedelta(minutes=rng.randrange(500_000))).isoformat(),
            "data": data,
        }
        value = orjson.dumps(event)
        messages.append((subj.encode(), value))
        distinct += 1
        if rng.random() < 0.05:  # resent by the partner: a duplicate
            messages.append((subj.encode(), value))

    while distinct < n:
        person = rng.randrange(people)
        source, subj = subject(person)
        when = (start + timedelta(minutes=rng.randrange(500_000))).isoformat()
        roll = rng.random()
        if roll < 0.42:
            order_id = f"O-{len(orders)}"
            amount = Decimal(rng.randrange(500, 50_000)) / 100
            orders[order_id] = (source, subj, amount)
            send(
                source,
                subj,
                "order.completed",
                {
                    "order_id": order_id,
                    "amount": str(amount),
                    "currency": "EUR" if rng.random() < 0.8 else "USD",
                    "channel": rng.choice(["web", "store", "app"]),
                    "occurred_at": when,
                    "line_items": [{"sku": f"SKU-{rng.randrange(999)}", "unit_price": str(amount)}],
                },
            )
        elif roll < 0.46 and orders:
            order_id = rng.choice(list(orders))
            full = rng.random() < 0.3
            amount = None if full else (orders[order_id][2] / 4).quantize(Decimal("0.01"))
            refunds.setdefault(order_id, []).append(amount)
            src, subj2, _ = orders[order_id]  # the partner that took the order refunds it
            send(
                src,
                subj2,
                "order.refunded",
                {"order_id": order_id, "occurred_at": when, **({"amount": str(amount)} if amount is not None else {})},
            )
        elif roll < 0.48 and orders:
            order_id = rng.choice(list(orders))
            cancelled.add(order_id)
            src, subj2, _ = orders[order_id]
            send(src, subj2, "order.cancelled", {"order_id": order_id, "occurred_at": when})
        elif roll < 0.72:
            send(
                source,
                subj,
                "interaction.logged",
                {
                    "channel": rng.choice(["email", "phone", "web", "store", "support", "social"]),
                    "direction": rng.choice(["inbound", "outbound"]),
                    "outcome": "resolved",
                    "occurred_at": when,
                    "summary": "asked about an order",
                },
            )
        elif roll < 0.80:
            send(
                source,
                subj,
                "feedback.submitted",
                {
                    "nps": rng.randrange(11),
                    "csat": rng.randrange(1, 6),
                    "perceived_value": 7,
                    "expected_value": 8,
                    "occurred_at": when,
                },
            )
        elif roll < 0.92:
            send(
                source,
                subj,
                "customer.identified",
                {
                    "identifiers": {"email": f"person{person}@example.com"},
                    "attributes": {"tier": rng.choice(["gold", "silver", "bronze"]), "visits": rng.randrange(100)},
                    "consent": {"email_marketing": rng.random() < 0.6},
                    "occurred_at": when,
                },
            )
        elif roll < 0.95:
            send(
                source,
                subj,
                "lead.captured",
                {"campaign": "spring", "lead_source": "webinar", "qualified": rng.random() < 0.3, "occurred_at": when},
            )
        elif roll < 0.97:
            send(source, subj, "consent.changed", {"consent": {"sms": rng.random() < 0.5}, "occurred_at": when})
        else:
            send(
                source,
                subj,
                "deal.updated",
                {"deal_id": f"D-{person}", "stage": rng.choice(["qualified", "proposal"]), "occurred_at": when},
            )
    net = Decimal(0)
    for order_id, (_, _, amount) in orders.items():
        if order_id in cancelled:
            continue
        parts = refunds.get(order_id, [])
        refunded = amount if any(r is None for r in parts) else min(amount, sum(parts, Decimal(0)))
        net += amount - refunded
    return messages, Produced(distinct, len(messages), len(orders), len(cancelled), net)


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="distinct partner events (plus ~5%% duplicates)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per consumed batch")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--no-relay", action="store_true", help="do not run the outbox relay alongside")
    args = parser.parse_args(argv)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with (
        harness.servers() as (server_url, bootstrap),
        harness.database(server_url, ["interaction"]) as url,
        harness.topics(bootstrap, [prefix + PARTNER_EVENTS, prefix + INTERACTION_EVENTS], args.partitions),
    ):
        figures = asyncio.run(_bench(url, bootstrap, prefix, args))
    return figures


async def _bench(url: str, bootstrap: str, prefix: str, args: argparse.Namespace) -> dict:
    messages, produced = generate(args.events)
    await _produce(bootstrap, prefix + PARTNER_EVENTS, messages)
    engine = make_engine(url)
    async with engine.begin() as conn:  # the partners are trusted to link by email, so merges happen as in life
        await conn.execute(
            sa.text(
                "INSERT INTO interaction.partner (id, name, kind, auto_registered, trust_contact_linking) "
                "SELECT p, p, 'retailer', false, true FROM unnest(CAST(:ids AS text[])) AS p "
                "ON CONFLICT (id) DO UPDATE SET trust_contact_linking = true"
            ),
            {"ids": PARTNERS},
        )
    watch = harness.Stopwatch()
    timings: dict[str, float] = {}
    transport = harness.TimedKafkaTransport(bootstrap, watch, client_id="bench-ingest")
    await transport.start()
    outbox = Outbox(messaging, SCHEMA, prefix)
    relay = OutboxRelay(
        engine=engine,
        dsn=asyncpg_dsn(url),
        tables=messaging,
        schema=SCHEMA,
        transport=transport,
        batch_size=2000,
        poll_interval_s=0.2,
    )
    consumer = harness.TimedInboxConsumer(
        expected=produced.sent,
        watch=watch,
        timings=timings,
        group_id=prefix + INGEST_INBOX,
        inbox_name=INGEST_INBOX,
        subscription=partner_ingest_subscription(outbox, timings),
        topic_prefix=prefix,
        transport=transport,
        session_factory=make_session_factory(engine),
        tables=messaging,
        batch_size=args.batch_size,
    )
    print(f"consuming {produced.sent:,} messages ({produced.events:,} distinct events) in batches of {args.batch_size} ...")
    cpu_before = await _cpu_seconds(engine)
    started = time.perf_counter()
    tasks = [asyncio.create_task(consumer.run())]
    if not args.no_relay:
        tasks.append(asyncio.create_task(relay.run()))
    lag: list[tuple[float, int]] = []
    try:
        async with asyncio.timeout(120 + produced.sent / 500):
            while not consumer.done.is_set():
                lag.append((time.perf_counter() - started, produced.sent - consumer.seen))
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise RuntimeError(f"only {consumer.seen:,} of {produced.sent:,} messages applied before the timeout") from None
    finally:
        consumer.stop()
        relay.stop()
        await asyncio.gather(*tasks)
    lag.append((time.perf_counter() - started, produced.sent - consumer.seen))
    cpu_after = await _cpu_seconds(engine)
    cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    unsent = await relay.unsent_count()
    seconds = consumer.finished_at - consumer.first_at
    split = _split(watch.totals, timings, seconds)  # before the reference run, which shares the fetch stopwatch
    try:
        checks = await _verify(engine, produced)
        ceiling = await _plumbing_reference(engine, transport, prefix, produced.sent, args.batch_size)
    finally:
        await transport.stop()
        await engine.dispose()

    rate = produced.sent / seconds
    print(
        f"\n{produced.sent:,} messages ({produced.events:,} distinct) in {seconds:.2f}s steady state "
        f"(start-up {consumer.first_at - started:.2f}s): {rate:,.0f} events/s"
    )
    print(f"P1 goal {GOAL:,} events/s: {rate / GOAL:.2f}x of the goal")
    print(
        f"batches: {len(consumer.batch_seconds)}, p50 {harness.percentile(consumer.batch_seconds, 50) * 1000:.0f} ms, "
        f"p99 {harness.percentile(consumer.batch_seconds, 99) * 1000:.0f} ms; outbox rows unsent at the end: {unsent}"
    )
    print("consumer lag (events not yet applied) over the run:")
    step = max(1, len(lag) // 12)
    print("  " + "  ".join(f"{t:.1f}s:{n:,}" for t, n in lag[::step] + ([lag[-1]] if lag[-1] not in lag[::step] else [])))
    print("where the time goes (share of steady-state wall time):")
    for phase, secs in split.items():
        print(f"  {phase:<14} {secs:>7.2f}s {secs / seconds:>6.1%}")
    print(
        "  (fetch = Kafka getmany, parse = envelope + payload validation, claim = inbox insert, check = timestamps,"
        " identifiers; resolve = identity resolution and merges; traits = the touched customers' traits extended"
        " (recomputed where history changed);"
        " tx = begin/commit; other = event loop, relay, aiokafka)"
    )
    print(
        f"reference, same run: the inbox consumer alone (fetch, parse, claim, commit; no-op handler) "
        f"{ceiling:,.0f} events/s — ingestion runs at {rate / ceiling:.2f}x of its own plumbing's ceiling"
    )
    print(
        f"CPU over the run (less noisy than events/s on a shared machine): this process "
        f"{cpu['process']:.1f}s ({cpu['process'] / produced.sent * 1e6:.0f} µs/event, consumer and relay), "
        f"Postgres backends of the benchmark's database {cpu['postgres']:.1f}s "
        f"({cpu['postgres'] / produced.sent * 1e6:.0f} µs/event)"
    )
    print("verified: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)")
    return {
        "benchmark": "ingest",
        "messages": produced.sent,
        "distinct_events": produced.events,
        "batch_size": args.batch_size,
        "events_per_s": round(rate, 1),
        "goal_events_per_s": GOAL,
        "ratio_to_goal": round(rate / GOAL, 3),
        "seconds": round(seconds, 3),
        "batch_p50_ms": round(harness.percentile(consumer.batch_seconds, 50) * 1000, 1),
        "batch_p99_ms": round(harness.percentile(consumer.batch_seconds, 99) * 1000, 1),
        "max_lag": max(n for _, n in lag),
        "lag_samples": [[round(t, 1), n] for t, n in lag],
        "time_split_s": {k: round(v, 3) for k, v in split.items()},
        "plumbing_reference_events_per_s": round(ceiling, 1),
        "ratio_to_plumbing": round(rate / ceiling, 3),
        "checks": checks,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_us_per_event": {k: round(v / produced.sent * 1e6, 1) for k, v in cpu.items()},
    }


async def _cpu_seconds(engine: AsyncEngine) -> dict[str, float]:
    """CPU used so far by this process and by the Postgres backends connected to the benchmark's database."""
    async with engine.connect() as conn:
        pids = (
            (await conn.execute(sa.text("select pid from pg_stat_activity where datname = current_database()"))).scalars().all()
        )
    tick = os.sysconf("SC_CLK_TCK")
    postgres = 0.0
    for pid in pids:
        try:  # fields 14 and 15 (after the parenthesised name): user and system time in clock ticks
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:  # Postgres on another host, or the backend just exited
            continue
        postgres += (int(fields[11]) + int(fields[12])) / tick
    times = os.times()
    return {"process": times.user + times.system, "postgres": postgres}


async def _plumbing_reference(
    engine: AsyncEngine, transport: harness.TimedKafkaTransport, prefix: str, expected: int, batch_size: int
) -> float:
    """The same topic through the same inbox consumer with a handler that does nothing: the plumbing's ceiling."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE interaction.inbox"))

    async def nothing(session, events) -> None:
        return None

    subscription = dataclasses.replace(partner_ingest_subscription(Outbox(messaging, SCHEMA, prefix)), handler=nothing)
    consumer = harness.TimedInboxConsumer(
        expected=expected,
        watch=harness.Stopwatch(),
        timings={},
        group_id=f"{prefix}reference",
        inbox_name="bench.reference",
        subscription=subscription,
        topic_prefix=prefix,
        transport=transport,
        session_factory=make_session_factory(engine),
        tables=messaging,
        batch_size=batch_size,
    )
    print("reference: the inbox consumer with a no-op handler over the same topic ...")
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(consumer.done.wait(), timeout=120 + expected / 500)
    finally:
        consumer.stop()
        await task
    return consumer.seen / (consumer.finished_at - consumer.first_at)


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    print(f"producing {len(messages):,} partner events to {topic} ...")
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
        f"produced in {seconds:.1f}s ({len(messages) / seconds:,.0f}/s, "
        f"{sum(len(v) for _, v in messages) / len(messages):.0f} B each)"
    )


def _split(totals: dict[str, float], timings: dict[str, float], wall: float) -> dict[str, float]:
    split = {p: totals.get(p, 0.0) for p in ["fetch", "parse", "claim"]}
    handler = totals.get("handler", 0.0)
    split.update({p: timings.get(p, 0.0) for p in HANDLER_PHASES})
    split["tx"] = totals.get("apply", 0.0) - split["claim"] - handler
    split["other"] = wall - sum(split.values())
    return split


async def _verify(engine: AsyncEngine, produced: Produced) -> dict:
    """Exactly what was produced: one inbox row and one timeline row per distinct event, orders once, spend net."""
    async with engine.connect() as conn:

        async def q(sql: str) -> object:
            return (await conn.execute(sa.text(sql))).scalar()

        got = {
            "inbox rows": await q(f"select count(*) from interaction.inbox where consumer = '{INGEST_INBOX}'"),
            "timeline rows": await q("select count(*) from interaction.activity"),
            "purchases": await q("select count(*) from interaction.purchase"),
            "counted purchases": await q(
                "select coalesce(sum(purchase_count), 0) from interaction.customer where merged_into is null"
            ),
            "net spend": await q("select coalesce(sum(total_spend), 0) from interaction.customer_spend"),
            "merges": await q("select count(*) from interaction.customer_merge"),
            "live customers": await q("select count(*) from interaction.customer where merged_into is null"),
        }
    want = {
        "inbox rows": produced.events,
        "timeline rows": produced.events,
        "purchases": produced.orders,
        "counted purchases": produced.orders - produced.cancelled_orders,
        "net spend": produced.net_spend,
    }
    wrong = [f"{k}: expected {v}, got {got[k]}" for k, v in want.items() if v != got[k]]
    if wrong:
        raise RuntimeError("ingest benchmark computed a wrong answer: " + "; ".join(wrong))
    return {k: str(v) for k, v in got.items()}
