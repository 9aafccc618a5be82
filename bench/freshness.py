"""Freshness: partner event accepted at the gateway → new stage (segment, value) visible through the gateway.

The whole system runs as separate OS processes (interaction, segmentation, clv, lifecycle, gateway) on the
real Kafka broker and a fresh migrated Postgres database, as `docker compose up` would run it. Partner
`order.completed` events for new customers are posted to the gateway's `POST /v1/events` at a steady rate
(default 1,000/s). A sample of them is followed: from the moment the gateway's answer says `accepted` (the
event is durable) until each measured part shows it through the gateway's per-part routes. The parts are
listed in PARTS (name → route, predicate); each is measured and reported on its own:
  lifecycle     GET /v1/customers/{id}/lifecycle    stage == development (first purchase)
  segmentation  GET /v1/customers/{id}/segmentation 200 (the service knows the customer: it saw the purchase)
  value         GET /v1/customers/{id}/value        200 (same, for clv)
Goal (P2): p95 ≤ 1 s. Prints p50/p95/p99 per part and the event throughput reached. After the load, every
accepted customer must reach Development in lifecycle's store, or the benchmark raises.

The resident memory (RSS) of every service process is sampled during the load; the peak of each is printed
against P7 (≤ 150 MB per process). The benchmark's own API key is created through the gateway's API with the
rate it needs (`POST /v1/api-keys`, `rate_limit_per_s`), as a user would: the bootstrap admin key only mints it.
"""

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import orjson

from bench import harness
from deploy.local.ports import free_port
from shared.contracts.topics import ALL, dlq
from shared.db import asyncpg_dsn
from tests.e2e.processes import ServiceProcess, process_env, running, serve_argv

SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
SOURCE = "bench-shop"
BOOTSTRAP_KEY = "bench-bootstrap-admin-key"
# Posts (20/s) plus the probes' polls (every part of every followed event, every 50 ms): far above the
# gateway's default 100 requests/s per key, so the benchmark's key carries its own rate.
KEY_RATE_PER_S = 100_000
GOAL_P95_S = 1.0
GOAL_RSS_MB = 150

# name → (path under /v1/customers/{id}, predicate on the answer's status and body): add a part here to measure it.
PARTS: dict[str, tuple[str, Callable[[int, bytes], bool]]] = {
    "lifecycle": ("/lifecycle", lambda status, body: status == 200 and orjson.loads(body).get("stage") == "development"),
    "segmentation": ("/segmentation", lambda status, body: status == 200),
    "value": ("/value", lambda status, body: status == 200),
}


def order(i: int, run: str) -> dict:
    return {
        "specversion": "1.0",
        "id": f"{run}-{i}",
        "source": SOURCE,
        "type": "order.completed",
        "subject": f"{run}-C{i}",
        "time": datetime.now(UTC).isoformat(),
        "data": {"order_id": f"O-{i}", "amount": "42.00", "currency": "EUR", "channel": "web"},
    }


class Probe:
    """One followed event: accepted at `accepted`, then polled until every part shows it."""

    def __init__(self, external_id: str, accepted: float) -> None:
        self.external_id = external_id
        self.accepted = accepted
        self.visible: dict[str, float] = {}
        self.requests = 0  # the probe's GETs through the gateway: the instrument's own load on the system


async def follow(
    client: harness.LeanClient, probe: Probe, parts: list[str], interval_s: float, late_interval_s: float, timeout_s: float
) -> None:
    # The partner's id → the internal id, as a client finds it: interaction assigns it in the transaction that
    # accepts the event, so the search by identifier answers at once (its time is not counted as staleness).
    found = await client.get("/v1/customers?" + urlencode({"source": SOURCE, "external_id": probe.external_id}))
    probe.requests += 1
    items = orjson.loads(found.body).get("items") if found.status == 200 else None
    if not items:
        raise AssertionError(f"accepted event for {probe.external_id} has no customer in interaction: {found.body[:200]!r}")
    customer_id = items[0]["customer_id"]
    pending = set(parts)
    deadline = probe.accepted + timeout_s
    while pending and time.perf_counter() < deadline:
        for part in list(pending):
            path, seen = PARTS[part]
            resp = await client.get(f"/v1/customers/{customer_id}{path}")
            probe.requests += 1
            if seen(resp.status, resp.body):
                probe.visible[part] = time.perf_counter()
                pending.discard(part)
        if pending:
            # Fine steps up to the goal, where they decide it; past it, coarser ones. Polls cost the system what a
            # frontend read does (gateway and owner), so a lagging system polled at the fine rate is loaded more
            # the further it lags (docs/development.md, "The load generators").
            late = time.perf_counter() - probe.accepted > GOAL_P95_S
            await asyncio.sleep(late_interval_s if late else interval_s)


def servers_cpu(database_url: str, bootstrap: str) -> dict[str, float | None]:
    """CPU so far of PostgreSQL's and the Kafka broker's processes (None for one not on this machine)."""
    return {
        "postgres": harness.run_async(harness.postgres_cpu_seconds(database_url)),
        "kafka": harness.kafka_cpu_seconds(bootstrap),
    }


async def drive(gateway: str, api_key: str, database_url: str, args: argparse.Namespace) -> dict:
    run = uuid.uuid4().hex[:8]
    probes: list[Probe] = []
    followers: list[asyncio.Task] = []
    accepted = 0
    client = harness.LeanClient(gateway, api_key, limit=64)
    try:
        batch = max(1, args.rate // 20)  # 20 posts a second
        period = batch / args.rate
        total = int(args.rate * args.seconds)
        in_flight: set[asyncio.Task] = set()
        started = time.perf_counter()

        slots = asyncio.Semaphore(args.max_in_flight)

        async def post(first: int, n: int) -> None:
            nonlocal accepted
            events = [order(i, run) for i in range(first, first + n)]
            async with slots:
                resp = await client.post("/v1/events", orjson.dumps(events))
            at = time.perf_counter()
            if resp.status != 200:
                raise AssertionError(f"gateway answered {resp.status}: {resp.body[:300]!r}")
            results = orjson.loads(resp.body)["results"]
            accepted += sum(r["status"] == "accepted" for r in results)
            for i in range(first, first + n):
                if i % args.probe_every == 0 and i >= args.rate * args.warmup:
                    probe = Probe(f"{run}-C{i}", at)
                    probes.append(probe)
                    polls = (args.poll_interval, args.late_poll_interval)
                    followers.append(asyncio.create_task(follow(client, probe, args.parts, *polls, args.timeout)))

        for k, first in enumerate(range(0, total, batch)):
            # Paced on the schedule; at most `max_in_flight` posts wait for an answer, so a saturated
            # system is offered what it accepts (the throughput reached says how much) instead of timing out.
            delay = started + k * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while len(in_flight) >= args.max_in_flight:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            if time.perf_counter() - started >= args.seconds:
                break  # the run stays bounded in time whatever the system accepts
            task = asyncio.create_task(post(first, min(batch, total - first)))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        try:
            await asyncio.gather(*in_flight)
            load_s = time.perf_counter() - started
            await asyncio.gather(*followers)
        finally:
            for task in [*in_flight, *followers]:
                task.cancel()
    finally:
        await client.close()

    # Correctness: every accepted customer reaches Development in lifecycle's own store (the benchmark, not a
    # service, reads it: the end state is checked where it is kept).
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=1, max_size=2)
    deadline = time.perf_counter() + 60
    while True:
        staged = await pool.fetchval("select count(*) from lifecycle.customer_stage where stage = 'development'")
        if staged == accepted or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.5)
    await pool.close()
    if staged != accepted:
        raise AssertionError(f"{accepted} customers accepted but {staged} reached development in lifecycle")
    return {"run": run, "accepted": accepted, "load_s": load_s, "probes": probes}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench freshness", description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="partner events per second offered to the gateway")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at the start not sampled")
    parser.add_argument("--probe-every", type=int, default=50, help="follow one event in this many")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between polls of one probe")
    parser.add_argument(
        "--late-poll-interval", type=float, default=0.25, help="seconds between polls of a probe not seen within the goal"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a part may take before it counts as missed")
    parser.add_argument("--max-in-flight", type=int, default=4, help="posts awaiting an answer at most")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated parts of {list(PARTS)}")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; known: {list(PARTS)}")

    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with (
        harness.servers() as (server_url, bootstrap),
        harness.database(server_url, [*SERVICES, "gateway"]) as database_url,
        harness.topics(bootstrap, [prefix + t for t in ALL] + [prefix + dlq(t) for t in ALL]),
        tempfile.TemporaryDirectory(prefix="crm-freshness-") as logs,
    ):
        shared = {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TOPIC_PREFIX": prefix,
            "TRANSPORT": "kafka",
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            "LIFECYCLE_SWEEP_INTERVAL_S": "0",
        }
        ports = {name: free_port() for name in [*SERVICES, "gateway"]}
        gateway_env = {f"GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES}
        gateway_env |= {"GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY, "GATEWAY_LOG_JSON": "false", "GATEWAY_LOG_LEVEL": "WARNING"}
        harness.internal_keys()  # process_env passes the gateway keypair on from the environment
        processes = [ServiceProcess(n, serve_argv(n, ports[n]), process_env(shared), ports[n], Path(logs)) for n in SERVICES]
        processes.append(
            ServiceProcess(
                "gateway",
                serve_argv("gateway", ports["gateway"]),
                process_env(
                    shared
                    | gateway_env
                    | {k: v for k, v in os.environ.items() if k.startswith("GATEWAY_") and k not in gateway_env}
                ),
                ports["gateway"],
                Path(logs),
            )
        )
        print(f"starting {len(processes)} processes ...")
        with running(processes):
            print(
                f"offering {args.rate} events/s for {args.seconds:.0f} s through the gateway; "
                f"following 1 in {args.probe_every}; parts: {', '.join(args.parts)}"
            )
            gateway = processes[-1].url
            api_key = harness.create_api_key(gateway, BOOTSTRAP_KEY, name="bench freshness", rate_limit_per_s=KEY_RATE_PER_S)
            pids = {p.name: p.proc.pid for p in processes}
            cpu_before = {name: harness.cpu_seconds(pid) for name, pid in pids.items()}
            servers_before = servers_cpu(database_url, bootstrap)
            generator_cpu = time.process_time()
            with harness.RssSampler(pids) as rss, harness.generator_collector_off():
                result = harness.run_async(drive(gateway, api_key, database_url, args))
            # The generator's own CPU (posts, probes, the end check), taken from the same two cores as the system's.
            generator_cpu = time.process_time() - generator_cpu
            # CPU per accepted event of each process, load and catch-up included: steadier than latencies on a
            # shared machine, and it says which process a gain or a loss is in.
            cpu_us = {
                name: (harness.cpu_seconds(pid) - cpu_before[name]) / max(result["accepted"], 1) * 1e6
                for name, pid in pids.items()
            }
            servers_us = {
                name: (after - servers_before[name]) / max(result["accepted"], 1) * 1e6
                for name, after in servers_cpu(database_url, bootstrap).items()
                if after is not None and servers_before[name] is not None
            }

    probes: list[Probe] = result["probes"]
    throughput = result["accepted"] / result["load_s"]
    figures: dict = {
        "benchmark": "freshness",
        "offered_rate": args.rate,
        "accepted": result["accepted"],
        "throughput_events_per_s": round(throughput, 1),
        "probes": len(probes),
        "goal_p95_s": GOAL_P95_S,
    }
    print(f"accepted {result['accepted']} events in {result['load_s']:.1f} s: {throughput:.0f} events/s (offered {args.rate}/s)")
    polls = sum(p.requests for p in probes)
    figures["probe_requests_per_s"] = round(polls / result["load_s"])
    print(f"followed {len(probes)} events with {polls} GETs through the gateway ({polls / result['load_s']:.0f}/s)")
    print(f"{'part':<14}{'seen':>8}{'missed':>8}{'p50 s':>9}{'p95 s':>9}{'p99 s':>9}{'max s':>9}  goal p95 ≤ 1 s")
    for part in args.parts:
        lat = [p.visible[part] - p.accepted for p in probes if part in p.visible]
        missed = len(probes) - len(lat)
        row = {"seen": len(lat), "missed": missed}
        if lat:
            row |= {q: round(harness.percentile(lat, v), 3) for q, v in (("p50_s", 50), ("p95_s", 95), ("p99_s", 99))}
            row["max_s"] = round(max(lat), 3)
            row["meets_goal"] = row["p95_s"] <= GOAL_P95_S
            print(
                f"{part:<14}{len(lat):>8}{missed:>8}{row['p50_s']:>9.3f}{row['p95_s']:>9.3f}{row['p99_s']:>9.3f}"
                f"{row['max_s']:>9.3f}  {'met' if row['meets_goal'] else 'NOT met'}"
            )
        else:
            print(f"{part:<14}{0:>8}{missed:>8}  never visible within {args.timeout} s")
        figures[part] = row
    print(f"{'process':<14}{'CPU µs/event':>13}{'peak RSS MB':>12}{'last MB':>9}  goal RSS ≤ {GOAL_RSS_MB} MB (P7)")
    figures["rss_mb"], figures["cpu_us_per_event"] = {}, {name: round(v) for name, v in cpu_us.items()}
    for name, peak in rss.peak.items():
        peak_mb, last_mb = peak / 2**20, rss.last[name] / 2**20
        figures["rss_mb"][name] = {"peak": round(peak_mb, 1), "last": round(last_mb, 1), "meets_goal": peak_mb <= GOAL_RSS_MB}
        print(f"{name:<14}{cpu_us[name]:>13.0f}{peak_mb:>12.1f}{last_mb:>9.1f}  {'met' if peak_mb <= GOAL_RSS_MB else 'NOT met'}")
    generator_us = generator_cpu / max(result["accepted"], 1) * 1e6
    figures["generator_cpu_us_per_event"] = round(generator_us)
    print(f"{'generator':<14}{generator_us:>13.0f}  (this process: posts, probes and the end check, on the same cores)")
    for name, us in servers_us.items():
        print(f"{name:<14}{us:>13.0f}  (all its processes)")
    figures["servers_cpu_us_per_event"] = {name: round(us) for name, us in servers_us.items()}
    # What one accepted event costs the machine, everything on it counted: its cores could take no more than this
    # many events per second, were the work spread perfectly. 1,000/s needs this under cores x 1,000 µs.
    total_us = sum(cpu_us.values()) + generator_us + sum(servers_us.values())
    cores = os.cpu_count() or 1
    figures["machine_cpu_us_per_event"] = round(total_us)
    figures["cpu_bound_events_per_s"] = round(cores * 1e6 / total_us) if total_us else None
    print(
        f"CPU per accepted event, all of the above: {total_us:,.0f} µs → {cores} cores could take at most "
        f"{cores * 1e6 / total_us:,.0f} events/s (offered {args.rate}/s)"
    )
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(f"machine: {os.cpu_count()} CPUs, load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)")
    if figures.get("lifecycle", {}).get("missed"):
        raise AssertionError(f"{figures['lifecycle']['missed']} followed events never showed their stage")
    return figures
