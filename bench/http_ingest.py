"""HTTP ingestion: partner events posted to the gateway's `POST /v1/events`, with and without grouping, side by side.

interaction and the gateway run as OS processes on the real Kafka broker and a fresh migrated Postgres, once per
mode, each interaction behind its own gateway:
  grouped           the default: the gateway sends concurrent posts of one caller as one batch
                    (gateway/proxy/event_posts.py) and interaction shares one transaction among concurrent
                    requests (its group commit)
  interaction only  the gateway forwards each post alone (`GATEWAY_EVENT_POSTS_GROUPED=false`, the default
                    before 2026-12-07); interaction's group commit on
  one per request   neither: one request and one transaction per post (`INTERACTION_INGEST_GROUP_COMMIT=false`)
Each gets the same load, one after the other, with a partner key minted through `POST /v1/api-keys` with the
rate the load needs:
  single   one event per request, offered open loop at `--rate` requests/s (latency from each request's
           scheduled send time, so a system that falls behind shows it; a request due while `--max-in-flight`
           wait is shed and counted; the rate is counted from the first answer to the last, as a system that
           keeps up answers); goal ≥ 2,000 requests/s, all accepted. Offered 5% above the goal by default
           (2,100/s): offered exactly the goal, the rate measured is the goal give or take the jitter of the
           first and last answers (1,994-2,008 per s with all 40,000 accepted, 2026-12-07), so a system that
           keeps up printed "NOT met" about half the time
  batch    100 events per request, closed loop with `--batch-concurrency` posters; goal ≥ 10,000 events/s
Each load prints the CPU per request of the gateway, interaction, PostgreSQL (all its processes) and this process
(the generator); for the batches, their sum per event and the most events/s the machine's cores could take at
that cost. Last, interaction's ingestion transaction runs alone (`transactions_alone`): its wall time per event
is the serial chain's (the identity lock lets one run at a time), the other bound on the door.
Customers are drawn from a pool (`--customers`), so identities are both created and found. Every response
must be 200 with every event accepted, and interaction must hold every accepted event, or the benchmark raises.

Growth (issue 13, "How cost grows"): `--pad-customers N` first adds N customers straight into interaction's
tables (each with its identifier, two orders: their timeline rows, purchases and inbox claims, its spend and
traits, as two events through the door would leave them), then VACUUM ANALYZE and CHECKPOINT, so that ingestion
is measured against an N-customer database. Then a share of the events (`--padded-share`, default half) is about
padded customers drawn uniformly (found, as partners' returning customers are), the rest as without padding.
"""

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from bench import harness
from deploy.local.ports import free_port
from shared.contracts.topics import ALL, dlq
from shared.db import asyncpg_dsn, make_engine, make_session_factory
from shared.messaging.outbox import Outbox
from tests.e2e.processes import ServiceProcess, process_env, running, serve_argv

from gateway.upstream_pool import BadResponse, ConnectFailed, Dropped
from interaction.ingestion.service import check_http_batch, store_http_batches
from interaction.settings import SCHEMA as INTERACTION_SCHEMA
from interaction.tables import messaging as interaction_messaging

SOURCE = "bench-http-shop"
BOOTSTRAP_KEY = "bench-http-bootstrap-admin-key"
GOAL_SINGLE_RPS = 2000
OFFERED_SINGLE_RPS = 2100  # above the goal, so that a system that keeps up answers above it (the docstring)
GOAL_BATCH_EVENTS_PER_S = 10_000
BATCH = 100
# mode → (INTERACTION_INGEST_GROUP_COMMIT, GATEWAY_EVENT_POSTS_GROUPED): both on is the default; "interaction
# only" is the default before the gateway grouped a caller's posts; "one per request" is neither.
MODES = {"grouped": ("true", "true"), "interaction only": ("true", "false"), "one per request": ("false", "false")}


# CPU per request printed for each load: the two servers, PostgreSQL (all its processes: backends, WAL writer,
# checkpointer), and this process, the load generator. Together they are the machine's CPU per event (below).
CPU_COLUMNS = ("gateway", "interaction", "postgres", "generator")
# The transactions alone (`transactions_alone`): events per transaction, and transactions.
ALONE_EVENTS, ALONE_TRANSACTIONS = 400, 40

PAD_CHUNK = 100_000
INGEST_INBOX = "interaction.partner-ingest"  # interaction.ingestion.service.INGEST_INBOX


class Padded:
    """Which events are about padded customers: `share` of them, each a padded customer drawn uniformly."""

    count = 0
    share = 0.0
    rng = random.Random(13)


def order(run: str, i: int, customers: int) -> dict:
    if Padded.count and Padded.rng.random() < Padded.share:
        subject = f"pad-C{Padded.rng.randrange(Padded.count)}"
    else:
        subject = f"{run}-C{i % customers}"
    return {
        "specversion": "1.0",
        "id": f"{run}-{i}",
        "source": SOURCE,
        "type": "order.completed",
        "subject": subject,
        "time": datetime.now(UTC).isoformat(),
        "data": {"order_id": f"{run}-O{i}", "amount": "42.00", "currency": "EUR", "channel": "web"},
    }


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.accepted = 0
        self.elapsed = 0.0
        self.shed = 0  # open loop: requests not sent because `max_in_flight` were already waiting
        # Open loop: when the first and the last answer came. Its rate is counted between them: counted from the
        # first send, the last answers' latency (~0.1-0.2 s of a 20 s run) would read as missing throughput, and a
        # system that keeps up with 2,000/s offered would print 1,976.
        self.first_answer: float | None = None
        self.last_answer = 0.0
        self.open_loop = False

    def record(self, status: int, latency: float, accepted: int) -> None:
        self.last_answer = time.perf_counter()
        if self.first_answer is None:
            self.first_answer = self.last_answer
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        self.accepted += accepted


class LeanClient:
    """The default client (bench/harness.py, LeanClient); `--client aiohttp` was the generator before 2026-12-07."""

    def __init__(self, gateway: str, key: str) -> None:
        self.http = harness.LeanClient(gateway, key, timeout_s=None)  # post() below bounds each request itself

    async def post(self, events: list[dict]) -> tuple[int, bytes]:
        raw = await self.http.post("/v1/events", orjson.dumps(events))
        return raw.status, raw.body

    async def close(self) -> None:
        await self.http.close()


class AiohttpClient:
    def __init__(self, gateway: str, key: str) -> None:
        connector = aiohttp.TCPConnector(limit=2000, limit_per_host=2000)
        self.session = aiohttp.ClientSession(gateway, connector=connector, headers={"X-API-Key": key})

    async def post(self, events: list[dict]) -> tuple[int, bytes]:
        async with self.session.post("/v1/events", json=events) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        await self.session.close()


CLIENTS: dict[str, type[LeanClient] | type[AiohttpClient]] = {"lean": LeanClient, "aiohttp": AiohttpClient}
Client = LeanClient | AiohttpClient
run_async = harness.run_async


async def post(client: Client, events: list[dict], scheduled: float, tally: Tally, timeout_s: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            status, raw = await client.post(events)
        body = orjson.loads(raw) if raw else None
        accepted = body.get("accepted", 0) if isinstance(body, dict) else 0
        tally.record(status, time.perf_counter() - scheduled, accepted)
    except (aiohttp.ClientError, ConnectFailed, Dropped, BadResponse, orjson.JSONDecodeError, TimeoutError):
        tally.record(0, time.perf_counter() - scheduled, 0)  # the client gave up: counted as status 0


async def single_open_loop(client: Client, run: str, rate: float, seconds: float, customers: int, max_in_flight: int) -> Tally:
    """One event per request, sent on a fixed schedule whatever the answers (open loop). A request due while
    `max_in_flight` wait for their answers is shed (counted, not sent): the generator's own queue would
    otherwise time requests out before they leave it, and a system that falls behind shows as shed requests."""
    tally = Tally()
    in_flight = 0

    async def tracked(events: list[dict], scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await post(client, events, scheduled, tally)
        finally:
            in_flight -= 1

    total = int(rate * seconds)
    start = time.perf_counter() + 0.1
    tasks = []
    with harness.generator_collector_off():
        async for i, scheduled in harness.paced(start, rate, total):
            if in_flight >= max_in_flight:
                tally.shed += 1
                continue
            tasks.append(asyncio.create_task(tracked([order(run, i, customers)], scheduled)))
        await asyncio.gather(*tasks)
    tally.elapsed = time.perf_counter() - start
    tally.open_loop = True
    return tally


async def batch_closed_loop(client: Client, run: str, concurrency: int, seconds: float, customers: int) -> Tally:
    """Batches of BATCH events, `concurrency` posters each sending its next batch when the last is answered."""
    tally = Tally()
    counter = iter(range(10**9))
    start = time.perf_counter()

    async def poster() -> None:
        while time.perf_counter() - start < seconds:
            first = next(counter) * BATCH
            await post(client, [order(run, first + j, customers) for j in range(BATCH)], time.perf_counter(), tally, 60)

    with harness.generator_collector_off():
        await asyncio.gather(*(poster() for _ in range(concurrency)))
    tally.elapsed = time.perf_counter() - start
    return tally


async def with_client(kind: str, gateway: str, key: str, load):
    client = CLIENTS[kind](gateway, key)
    try:
        return await load(client)
    finally:
        await client.close()


async def warm_up(client: Client, run: str) -> None:
    tally = Tally()
    await asyncio.gather(*(post(client, [order(run, i, 10**9)], time.perf_counter(), tally) for i in range(200)))


def summary(name: str, tally: Tally, events_per_request: int, cpu: dict[str, float]) -> dict:
    ok = tally.statuses.get(200, 0)
    sent = sum(tally.statuses.values())
    shed = tally.shed
    # Open loop: n answers over the span from the first to the last are n - 1 intervals (Tally). Closed loop:
    # from the start to the last answer (the posters stop sending at `seconds`).
    if tally.open_loop and tally.first_answer is not None and sent > 1:
        span, intervals = tally.last_answer - tally.first_answer, (sent - 1) / sent
    else:
        span, intervals = tally.elapsed, 1.0
    row = {
        "requests": sent,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "accepted_events": tally.accepted,
        "seconds": round(tally.elapsed, 2),
        "answer_span_s": round(span, 2),
        "requests_per_s": round(ok * intervals / span, 1),
        "events_per_s": round(tally.accepted * intervals / span, 1),
        # What the old reckoning (from the first send to the last answer) gives, for comparison with earlier runs.
        "requests_per_s_from_first_send": round(ok / tally.elapsed, 1),
    }
    if tally.latencies:
        row |= {f"p{q}_ms": round(harness.percentile(tally.latencies, q) * 1000, 1) for q in (50, 99)}
    row["shed"] = shed
    all_ok = ok == sent and tally.accepted == sent * events_per_request and not shed
    row["all_accepted"] = all_ok
    # CPU per request of each process: steadier than throughput on a shared machine.
    row["cpu_us_per_request"] = {k: round(v / max(sent, 1) * 1e6) for k, v in cpu.items()}
    others = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items() if k != "200") or "none"
    print(
        f"  {name:<18}{row['requests_per_s']:>10.0f}{row['events_per_s']:>12.0f}{row.get('p50_ms', 0):>10.1f}"
        f"{row.get('p99_ms', 0):>10.1f}"
        + "".join(f"{row['cpu_us_per_request'].get(k, 'n/a'):>8}" for k in CPU_COLUMNS)
        + f"  not 200: {others}; shed: {shed}; {'all accepted' if all_ok else 'NOT all accepted'}"
    )
    return row


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench http_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=OFFERED_SINGLE_RPS, help="single-event requests/s offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured load")
    parser.add_argument("--max-in-flight", type=int, default=512, help="open loop: requests awaiting an answer at most")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="posters of 100-event batches")
    parser.add_argument("--customers", type=int, default=5000, help="distinct customers the events are about")
    parser.add_argument("--modes", default="grouped,interaction only", help=f"comma-separated of {list(MODES)}")
    parser.add_argument("--client", choices=list(CLIENTS), default="lean", help="the load generator's HTTP client")
    parser.add_argument(
        "--pad-customers", type=int, default=0, help="customers added straight into interaction's tables before measuring"
    )
    parser.add_argument(
        "--padded-share", type=float, default=0.5, help="with --pad-customers: share of events about padded customers"
    )
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]

    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with (
        harness.servers() as (server_url, bootstrap),
        harness.database(server_url, ["interaction", "gateway"]) as database_url,
        harness.topics(bootstrap, [prefix + t for t in ALL] + [prefix + dlq(t) for t in ALL]),
        tempfile.TemporaryDirectory(prefix="crm-http-ingest-") as logs,
    ):
        harness.internal_keys()
        if args.pad_customers:
            print(f"padding interaction with {args.pad_customers} customers ...")
            args.padding = asyncio.run(pad_customers(database_url, args.pad_customers))
            print(
                f"  padded, VACUUM ANALYZE and CHECKPOINT in {args.padding['setup_s']:.0f} s (setup, not measured); "
                f"interaction's tables {args.padding['total_bytes'] / 2**20:.0f} MiB, "
                f"{args.padding['bytes_per_customer']} B per customer"
            )
            Padded.count, Padded.share = args.pad_customers, args.padded_share
        shared = {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TOPIC_PREFIX": prefix,
            "TRANSPORT": "kafka",
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
        }
        processes: dict[str, tuple[ServiceProcess, ServiceProcess]] = {}
        for n, mode in enumerate(modes):
            ip, gp = free_port(), free_port()
            # No relay or consumer in either: what is measured is the request path alone, the same in both (the
            # outbox rows wait; `python -m bench freshness` measures the whole path).
            interaction = ServiceProcess(
                f"interaction-{n}",
                serve_argv("interaction", ip),
                process_env(shared | {"INTERACTION_INGEST_GROUP_COMMIT": MODES[mode][0], "INTERACTION_RUN_WORKERS": "false"}),
                ip,
                Path(logs),
            )
            gateway = ServiceProcess(
                f"gateway-{n}",
                serve_argv("gateway", gp),
                process_env(
                    shared
                    | {
                        "GATEWAY_INTERACTION_URL": interaction.url,
                        "GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
                        "GATEWAY_EVENT_POSTS_GROUPED": MODES[mode][1],
                    }
                ),
                gp,
                Path(logs),
            )
            processes[mode] = (interaction, gateway)
        print(f"starting {2 * len(modes)} processes ...")
        with running([p for pair in processes.values() for p in pair]):
            results: dict[str, dict] = {}
            for mode, (interaction, gateway) in processes.items():
                key = harness.create_api_key(
                    gateway.url,
                    BOOTSTRAP_KEY,
                    name=f"bench http_ingest {mode}",
                    role="partner",
                    partner_id=SOURCE,
                    rate_limit_per_s=100_000,
                )
                run = uuid.uuid4().hex[:8]
                run_async(with_client(args.client, gateway.url, key, partial(warm_up, run=f"{run}w")))
                print(
                    f"{mode}: single events offered at {args.rate:.0f}/s for {args.seconds:.0f} s; then batches of "
                    f"{BATCH}, {args.batch_concurrency} posters, {args.seconds:.0f} s"
                )
                print(
                    f"  {'load':<18}{'req/s':>10}{'events/s':>12}{'p50 ms':>10}{'p99 ms':>10}"
                    f"{'gw µs':>8}{'int µs':>8}{'pg µs':>8}{'gen µs':>8}"
                    "  (CPU per request)"
                )
                pids = {"gateway": gateway.proc.pid, "interaction": interaction.proc.pid}
                cpu = await_cpu(pids, database_url)
                blocks_before = asyncio.run(_blocks(database_url))
                single = run_async(
                    with_client(
                        args.client,
                        gateway.url,
                        key,
                        partial(
                            single_open_loop,
                            run=f"{run}s",
                            rate=args.rate,
                            seconds=args.seconds,
                            customers=args.customers,
                            max_in_flight=args.max_in_flight,
                        ),
                    )
                )
                cpu, before = await_cpu(pids, database_url), cpu
                results[mode] = {"run": run, "single": summary("single event", single, 1, {k: cpu[k] - before[k] for k in cpu})}
                results[mode]["single"]["load_avg"] = round(os.getloadavg()[0], 2)
                blocks_before = await_blocks(database_url, blocks_before, results[mode]["single"])
                batch = run_async(
                    with_client(
                        args.client,
                        gateway.url,
                        key,
                        partial(
                            batch_closed_loop,
                            run=f"{run}b",
                            concurrency=args.batch_concurrency,
                            seconds=args.seconds,
                            customers=args.customers,
                        ),
                    )
                )
                cpu, before = await_cpu(pids, database_url), cpu
                results[mode]["batch"] = summary(f"batches of {BATCH}", batch, BATCH, {k: cpu[k] - before[k] for k in cpu})
                results[mode]["batch"]["load_avg"] = round(os.getloadavg()[0], 2)
                await_blocks(database_url, blocks_before, results[mode]["batch"])
                print(
                    f"  load average {results[mode]['single']['load_avg']} / {results[mode]['batch']['load_avg']}; "
                    f"PostgreSQL blocks per event hit/read: single {results[mode]['single']['blocks_hit_per_event']}/"
                    f"{results[mode]['single']['blocks_read_per_event']}, batches "
                    f"{results[mode]['batch']['blocks_hit_per_event']}/{results[mode]['batch']['blocks_read_per_event']}; "
                    f"WAL bytes per event: single {results[mode]['single']['wal_bytes_per_event']}, "
                    f"batches {results[mode]['batch']['wal_bytes_per_event']}; full-page images per event: single "
                    f"{results[mode]['single']['wal_full_pages_per_event']}, batches "
                    f"{results[mode]['batch']['wal_full_pages_per_event']}"
                )
            stored = asyncio.run(_stored(database_url))
        alone = asyncio.run(transactions_alone(database_url, args.customers))
    # Every accepted event is stored; a request the client or the gateway gave up on may be stored as well.
    accepted = sum(r[load]["accepted_events"] for r in results.values() for load in ("single", "batch")) + 200 * len(modes)
    if stored < accepted:
        raise AssertionError(f"{accepted} events accepted but interaction holds only {stored}")
    return report(results, alone, args)


def await_cpu(pids: dict[str, int], database_url: str) -> dict[str, float]:
    """CPU seconds used so far: each server process, PostgreSQL's processes (absent when it runs elsewhere), and
    this process (the load generator's clients; it does nothing else while a load runs)."""
    cpu = {k: harness.cpu_seconds(p) for k, p in pids.items()}
    if (postgres := asyncio.run(harness.postgres_cpu_seconds(database_url))) is not None:
        cpu["postgres"] = postgres
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu["generator"] = usage.ru_utime + usage.ru_stime
    return cpu


async def transactions_alone(database_url: str, customers: int) -> dict:
    """interaction's ingestion transaction alone, in this process: `store_http_batches` of ALONE_EVENTS events
    (validated beforehand), one transaction after the other, as the identity lock makes them run (each holds it
    to its commit). Its wall time per event is the serial part of HTTP ingestion: no HTTP, no other request
    and no other process in the way, so 1 / (wall per event) is the most events/s the door could take."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    outbox = Outbox(interaction_messaging, INTERACTION_SCHEMA, "bench-alone.")
    run = uuid.uuid4().hex[:8]
    checked = [
        check_http_batch([order(f"{run}a", t * ALONE_EVENTS + i, customers) for i in range(ALONE_EVENTS)])
        for t in range(ALONE_TRANSACTIONS + 3)
    ]

    async def store(batch) -> None:
        async with sessions() as session:
            await store_http_batches(session, outbox, [batch])
            await session.commit()

    try:
        for batch in checked[:3]:  # warm: prepared statements, the pool
            await store(batch)
        postgres = await harness.postgres_cpu_seconds(database_url)
        started, cpu = time.perf_counter(), time.process_time()
        for batch in checked[3:]:
            await store(batch)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        postgres_after = await harness.postgres_cpu_seconds(database_url)
    finally:
        await engine.dispose()
    events = ALONE_EVENTS * ALONE_TRANSACTIONS
    row = {
        "events_per_transaction": ALONE_EVENTS,
        "events": events,
        "wall_us_per_event": round(wall / events * 1e6, 1),
        "events_per_s": round(events / wall),
        "process_cpu_us_per_event": round(cpu / events * 1e6, 1),
        "postgres_cpu_us_per_event": None
        if postgres is None or postgres_after is None
        else round((postgres_after - postgres) / events * 1e6, 1),
    }
    print(
        f"interaction's transactions alone ({ALONE_TRANSACTIONS} of {ALONE_EVENTS} events, one at a time, no HTTP): "
        f"{row['wall_us_per_event']} µs of wall per event → at most {row['events_per_s']} events/s through the door; "
        f"CPU per event: this process {row['process_cpu_us_per_event']} µs, PostgreSQL {row['postgres_cpu_us_per_event']} µs"
    )
    return row


async def _blocks(database_url: str) -> tuple[int, int, int, int]:
    """The database's shared-buffer hits and reads (a read may still come from the OS page cache), the
    server's WAL position in bytes (what every write costs the log, and a replica) and its count of full-page
    images (the first change to a page after a checkpoint logs the whole 8 kB page)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT blks_hit, blks_read, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
            "(SELECT wal_fpi FROM pg_stat_wal) FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def await_blocks(database_url: str, before: tuple[int, int, int, int], row: dict) -> tuple[int, int, int, int]:
    """Blocks per accepted event since `before`, once the backends have flushed their statistics (the wait is
    not measured: the next load starts after it)."""
    time.sleep(harness.STATS_FLUSH_S)
    after = asyncio.run(_blocks(database_url))
    events = max(row["accepted_events"], 1)
    row["blocks_hit_per_event"] = round((after[0] - before[0]) / events, 1)
    row["blocks_read_per_event"] = round((after[1] - before[1]) / events, 2)
    row["wal_bytes_per_event"] = round((after[2] - before[2]) / events)
    row["wal_full_pages_per_event"] = round((after[3] - before[3]) / events, 2)
    return after


# Straight into interaction's tables, as two `order.completed` events through the door leave a new customer:
# the customer with its traits, its identifier, two timeline rows, two purchases, its spend, two inbox claims.
PAD_TEMP = [
    """CREATE TEMP TABLE pad ON COMMIT DROP AS
       SELECT g, gen_random_uuid() AS id, timestamptz '2026-01-01' + (g % 300) * interval '1 day' AS t0
       FROM generate_series({first}, {last}) g""",
    """CREATE TEMP TABLE pad_event ON COMMIT DROP AS
       SELECT p.g, p.id, k, gen_random_uuid() AS activity_id, gen_random_uuid() AS purchase_id,
              'pad-' || p.g || '-' || k AS event_id, 'pad-O' || p.g || '-' || k AS order_id,
              p.t0 + (k - 1) * interval '20 days' AS at
       FROM pad p CROSS JOIN generate_series(1, 2) k""",
]
# Each with its parameters: the source ($1; the spend has none) and, for the inbox claims, the consumer ($2).
PAD_INSERTS = [
    (
        """INSERT INTO interaction.customer (id, first_seen_at, last_seen_at, purchase_count, last_purchase_at,
                                        preferred_channel, partners)
       SELECT id, t0, t0 + interval '20 days', 2, t0 + interval '20 days', 'web', ARRAY[$1::text] FROM pad""",
        (SOURCE,),
    ),
    (
        """INSERT INTO interaction.customer_identifier (kind, source, external_id, customer_id, home_customer_id)
       SELECT 'source', $1, 'pad-C' || g, id, id FROM pad""",
        (SOURCE,),
    ),
    (
        """INSERT INTO interaction.activity (id, customer_id, home_customer_id, source, event_id, type, occurred_at,
                                        channel, data)
       SELECT activity_id, id, id, $1, event_id, 'order.completed', at, 'web',
              jsonb_build_object('order_id', order_id, 'amount', '42.00', 'currency', 'EUR', 'channel', 'web')
       FROM pad_event""",
        (SOURCE,),
    ),
    (
        """INSERT INTO interaction.purchase (id, customer_id, home_customer_id, source, order_id, amount, currency,
                                        channel, occurred_at, event_id)
       SELECT purchase_id, id, id, $1, order_id, 42.00, 'EUR', 'web', at, event_id FROM pad_event""",
        (SOURCE,),
    ),
    (
        """INSERT INTO interaction.customer_spend (customer_id, currency, purchase_count, total_spend, average_spend,
                                              refunded, last_purchase_at)
       SELECT id, 'EUR', 2, 84.00, 42.00, 0, t0 + interval '20 days' FROM pad""",
        (),
    ),
    (
        """INSERT INTO interaction.inbox (consumer, source, event_id) SELECT $2, $1, event_id FROM pad_event""",
        (SOURCE, INGEST_INBOX),
    ),
]
PAD_TABLES = ["customer", "customer_identifier", "activity", "purchase", "customer_spend", "inbox"]


async def pad_customers(database_url: str, n: int) -> dict:
    """N customers straight into interaction's tables (PAD_TEMP, PAD_INSERTS), in chunks of PAD_CHUNK, then VACUUM
    ANALYZE and CHECKPOINT; the seconds it took and the size of what the ingestion path reads."""
    started = time.monotonic()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for first in range(0, n, PAD_CHUNK):
            last = min(first + PAD_CHUNK, n) - 1
            async with conn.transaction():
                # A utility statement (CREATE TABLE AS) takes no parameters: the two ints are written in.
                await conn.execute(PAD_TEMP[0].format(first=int(first), last=int(last)))
                await conn.execute(PAD_TEMP[1])
                for sql, params in PAD_INSERTS:
                    await conn.execute(sql, *params)
        for table in PAD_TABLES:
            await conn.execute(f"VACUUM ANALYZE interaction.{table}")
        await conn.execute("CHECKPOINT")
        sizes = {t: int(await conn.fetchval(f"SELECT pg_total_relation_size('interaction.{t}')")) for t in PAD_TABLES}
    finally:
        await conn.close()
    total = sum(sizes.values())
    return {
        "setup_s": round(time.monotonic() - started, 1),
        "table_bytes": sizes,
        "total_bytes": total,
        "bytes_per_customer": round(total / n),
    }


async def _stored(database_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetchval(
            "select count(*) from interaction.activity where source = $1 and event_id not like 'pad-%'", SOURCE
        )
    finally:
        await conn.close()


def report(results: dict, alone: dict, args: argparse.Namespace) -> dict:
    figures: dict = {
        "benchmark": "http_ingest",
        "offered_single_rps": args.rate,
        "goal_single_rps": GOAL_SINGLE_RPS,
        "goal_batch_events_per_s": GOAL_BATCH_EVENTS_PER_S,
        "pad_customers": args.pad_customers,
        "padded_share": args.padded_share if args.pad_customers else 0.0,
        **({"padding": args.padding} if args.pad_customers else {}),
        **results,
        "transactions_alone": alone,
    }
    cores = os.cpu_count() or 1
    for mode, r in results.items():
        # What the batches cost the machine per event: its cores could take no more than this, were nothing else
        # running and everything overlapping perfectly (it is not: the transactions run one at a time, above).
        cpu = r["batch"]["cpu_us_per_request"]
        if all(k in cpu for k in CPU_COLUMNS):
            per_event = sum(cpu[k] for k in CPU_COLUMNS) / BATCH
            r["batch"]["cpu_us_per_event"] = round(per_event, 1)
            r["batch"]["cpu_bound_events_per_s"] = round(cores * 1e6 / per_event)
            print(
                f"{mode}, batches: CPU per event "
                + " + ".join(f"{k} {cpu[k] / BATCH:.0f}" for k in CPU_COLUMNS)
                + f" = {per_event:.0f} µs → {cores} cores could take at most {cores * 1e6 / per_event:,.0f} events/s"
            )
    print(f"goal: single events ≥ {GOAL_SINGLE_RPS} requests/s all accepted; batches ≥ {GOAL_BATCH_EVENTS_PER_S} events/s")
    for mode, r in results.items():
        single_met = r["single"]["all_accepted"] and r["single"]["requests_per_s"] >= GOAL_SINGLE_RPS
        batch_met = r["batch"]["all_accepted"] and r["batch"]["events_per_s"] >= GOAL_BATCH_EVENTS_PER_S
        print(
            f"  {mode:<16} single {r['single']['requests_per_s']:>7.0f} req/s ({'met' if single_met else 'NOT met'}), "
            f"batches {r['batch']['events_per_s']:>7.0f} events/s ({'met' if batch_met else 'NOT met'})"
        )
        r["single"]["meets_goal"], r["batch"]["meets_goal"] = single_met, batch_met
    for reference in ("interaction only", "one per request"):
        if not {"grouped", reference} <= results.keys():
            continue
        g, o = results["grouped"], results[reference]
        ratios = {
            "single_requests_per_s": _ratio(g["single"]["requests_per_s"], o["single"]["requests_per_s"]),
            "batch_events_per_s": _ratio(g["batch"]["events_per_s"], o["batch"]["events_per_s"]),
            "single_interaction_cpu": _ratio(
                g["single"]["cpu_us_per_request"]["interaction"], o["single"]["cpu_us_per_request"]["interaction"]
            ),
        }
        figures[f"ratio_grouped_to_{reference.replace(' ', '_')}"] = ratios
        print(
            f"ratio grouped / {reference}, same run: "
            + ", ".join(f"{k} {'n/a (the reference accepted nothing)' if v is None else f'{v}x'}" for k, v in ratios.items())
        )
    return figures


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None
