"""Gateway overhead: DB-backed reads through the gateway and directly to the service, in the same run.

The four services and the gateway run as OS processes (one uvicorn worker each) on the real Postgres and
Kafka; N customers are loaded through `POST /v1/events` and every projection is awaited. Then, from a
separate load-generator process on loopback:

1. latency at a fixed rate (open loop: each request has a scheduled send time and its latency is measured
   from that time, so a stalled server cannot hide its queue — no coordinated omission): the composed view
   `GET /v1/customers/{id}` through the gateway, and a single-service read `GET /v1/customers/{id}/lifecycle`
   through the gateway and directly at the lifecycle service;
2. throughput (closed loop, `wrk`, installed with apt-get when missing) of the single-service read through the
   gateway and directly, and of the composed view: the gateway's cost is 1 − gateway/direct;
3. side by side in the same run, the two designs of docs/gateway.md "Composed view": the view served from
   the gateway's copy (one primary-key read) and the view asked of the four owners (`Cache-Control:
   no-cache`: today's fan-out), plus the floor of any owner read (`/health/live` of one service: HTTP and
   framework, no work), which bounds "each service keeps its part as a ready document";
4. CPU per request of each closed-loop run: the gateway's and the services' processes and the PostgreSQL
   server's (when the benchmark started it), from their CPU times before and after.

Goals (issue 13, P6): composed view ≥ 1,000 rps closed loop (32 connections); p99 ≤ 25 ms with 0 errors at
500 rps offered; the gateway costs ≤ 10% of direct throughput on a single-service read.

Growth (issue 13, "How cost grows"): `--pad-copy 98000,998000` then grows the gateway's copy table, level by
level (cumulative synthetic customers, each a real row's parts under a new id), and at the loaded customers
alone and at each level measures the composed view from the copy again, closed and open loop, CPU per view,
PostgreSQL's buffer hits and reads per view and the load average, for two read sets: "hot" (the loaded
customers) and "uniform" (ids drawn uniformly over every row of the table).
Every response must be a 200 (and sampled views complete), else the benchmark raises.
"""

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

from bench import harness
from deploy.local.ports import free_port
from shared.contracts.topics import ALL as ALL_TOPICS
from shared.db import asyncpg_dsn
from shared.internal_auth import HEADER as INTERNAL_TOKEN_HEADER

SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
SETTLE_S = 5.0  # the gateway's default GATEWAY_VIEW_COPY_SETTLE_S
ADMIN_KEY = "bench-admin-" + uuid.uuid4().hex


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000, help="customers loaded before measuring")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second of the open-loop runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections of the throughput runs")
    parser.add_argument(
        "--pad-copy",
        type=_levels,
        default=[],
        help="comma-separated cumulative counts of synthetic customers added to the gateway's view copy, one "
        "measured level each (e.g. 98000,998000: 100k and 1M rows with 2,000 loaded customers)",
    )
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    prefix = f"benchgw{uuid.uuid4().hex[:8]}."
    with (
        harness.servers() as (server_url, bootstrap),
        harness.database(server_url, [*SERVICES, "gateway"]) as url,
        harness.topics(bootstrap, [prefix + t for t in ALL_TOPICS]),
        ExitStack() as stack,
    ):
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-gw-")))
        # Padded rows are never refreshed from the owners (the owners do not know them), so they must stay fresh
        # through every level: a padded run serves the copy for a day instead of 300 s (no event changes any
        # customer while measuring, so this changes nothing else that is measured).
        urls, pids = start_stack(stack, url, bootstrap, prefix, log_dir, max_age_s=86400 if args.pad_copy else None)
        started = time.monotonic()
        print(f"loading {args.customers} customers through the gateway ...")
        ids = asyncio.run(load(urls["gateway"], url, args.customers))
        print(f"{len(ids)} customers projected by every service in {time.monotonic() - started:.0f} s")
        pids["postgres"] = asyncio.run(harness.postgres_pid(url)) if not os.environ.get("DATABASE_URL") else None
        results = measure(urls, pids, url, ids, args, wrk, log_dir)
        if args.pad_copy:
            results["growth"] = measure_growth(urls, pids, url, ids, args, wrk, log_dir)
    return report(results, args)


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    if any(b <= a for a, b in zip([0, *levels], levels, strict=False)):
        raise argparse.ArgumentTypeError("levels must be positive and increasing (cumulative counts)")
    return levels


# --- the stack ----------------------------------------------------------------------------------------


def start_stack(
    stack: ExitStack, database_url: str, bootstrap: str, prefix: str, log_dir: Path, max_age_s: float | None = None
) -> tuple[dict[str, str], dict[str, int | None]]:
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    shared = base | {
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
        "TRANSPORT": "kafka",
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
        **harness.internal_keys(),
    }
    envs = {name: shared for name in SERVICES}
    envs["gateway"] = (
        shared
        | {f"GATEWAY_{n.upper()}_URL": f"http://127.0.0.1:{ports[n]}" for n in SERVICES}
        | {
            "GATEWAY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_RATE_LIMIT_PER_S": "1000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        | ({"GATEWAY_VIEW_COPY_MAX_AGE_S": str(max_age_s)} if max_age_s else {})
    )
    procs = {}
    for name, port in ports.items():
        log = (log_dir / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", name, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=envs[name],
            cwd=harness.REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, procs[name])
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    pids = {name: proc.pid for name, proc in procs.items()}
    deadline = time.monotonic() + 90
    for name, url in urls.items():
        while True:
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{(log_dir / f'{name}.log').read_text()[-3000:]}")
            try:
                import urllib.request

                with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready:\n{(log_dir / f'{name}.log').read_text()[-3000:]}")
            time.sleep(0.2)
    return urls, pids


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- data -----------------------------------------------------------------------------------------------


async def load(gateway: str, database_url: str, customers: int) -> list[str]:
    rng = random.Random(11)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for n in range(customers):
        for k in range(1 + rng.randrange(3)):
            when = (start + timedelta(days=rng.uniform(0, 300))).isoformat()
            events.append(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "bench-shop",
                    "type": "order.completed",
                    "subject": f"B{n:06d}",
                    "time": when,
                    "data": {
                        "order_id": f"B{n}-{k}",
                        "amount": f"{rng.uniform(5, 200):.2f}",
                        "currency": "EUR",
                        "channel": "web",
                    },
                }
            )
    async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:
        for i in range(0, len(events), 500):
            async with session.post(f"{gateway}/v1/events", json=events[i : i + 500]) as resp:
                body = await resp.json()
                if resp.status != 200 or body.get("accepted") != len(events[i : i + 500]):
                    raise RuntimeError(f"ingestion failed: {resp.status} {body}")
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            deadline = time.monotonic() + 300
            while True:
                ids = [
                    str(r[0])
                    for r in await conn.fetch(
                        "select distinct customer_id from interaction.customer_identifier where source = 'bench-shop'"
                    )
                ]
                if len(ids) == customers:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"interaction stored {len(ids)} of {customers} customers")
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        # Every service has projected every customer once the last loaded ones are complete in the view.
        probe = ids[-50:] + rng.sample(ids, min(50, len(ids)))
        deadline = time.monotonic() + 300
        while True:
            complete = 0
            for cid in probe:  # asked of the owners, not the gateway's copy
                async with session.get(f"{gateway}/v1/customers/{cid}", headers={"Cache-Control": "no-cache"}) as resp:
                    view = await resp.json()
                    complete += (
                        resp.status == 200
                        and not view["unavailable"]
                        and all(view[p] is not None for p in ("segmentation", "value", "lifecycle"))
                    )
            if complete == len(probe):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {complete}/{len(probe)} sampled views complete")
            await asyncio.sleep(1.0)
        return ids


async def fill_copy(gateway: str, database_url: str, ids: list[str]) -> None:
    """The gateway serves a part from its copy once read from the owner after the settle window that follows
    the customer's last event (default 5 s): wait until no event has come for longer than that (the services
    may still be scoring and segmenting), then one read per measured customer fills the copy."""
    rng = random.Random(3)
    probe = rng.sample(ids, min(100, len(ids)))
    sem = asyncio.Semaphore(16)
    async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:

        async def fill(cid: str) -> None:
            async with sem, session.get(f"{gateway}/v1/customers/{cid}") as resp:
                if resp.status != 200:
                    raise RuntimeError(f"view of {cid}: {resp.status} {await resp.text()}")
                await resp.read()

        for _ in range(5):
            await _quiet(database_url, SETTLE_S + 1)
            started = time.monotonic()
            await asyncio.gather(*(fill(cid) for cid in ids))
            print(f"  {len(ids)} views read from the owners into the copy in {time.monotonic() - started:.0f} s")
            stale = 0
            for cid in probe:
                async with session.get(f"{gateway}/v1/customers/{cid}") as resp:
                    sources = (await resp.json())["sources"]
                    stale += not all(s["from_copy"] and not s["stale"] for s in sources.values())
            if not stale:
                return
        raise RuntimeError(f"{stale}/{len(probe)} sampled views still not served from the copy")


async def _quiet(database_url: str, seconds: float) -> None:
    """Until the gateway has consumed no event about any customer for `seconds`."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            idle = await conn.fetchval("SELECT extract(epoch FROM now() - max(last_event_at)) FROM gateway.customer_view_copy")
            if idle is not None and idle >= seconds:
                return
            await asyncio.sleep(max(0.5, seconds - float(idle or 0)))
        raise RuntimeError("events kept coming for 10 minutes")
    finally:
        await conn.close()


PAD_CHUNK = 100_000


async def pad_copy(database_url: str, n: int, real_ids: list[str]) -> float:
    """N more rows in the gateway's copy, in chunks of PAD_CHUNK: each padded row is one of the loaded customers'
    complete rows (all four parts) under a new id, that id written into its parts' bodies, so rows keep a
    realistic size and content. The padded parts count as read from the owners now (or when their template was,
    if later), so the gateway serves them from the copy (the owners know no such customer: asked, they would
    answer 404). Then VACUUM ANALYZE and CHECKPOINT, as a loaded database would be. Returns the seconds taken."""
    from gateway.customer_view.models import PARTS

    started = time.monotonic()
    parts = ", ".join(f"{p}_status, {p}_body, {p}_as_of, {p}_version" for p in PARTS)
    body = "convert_to(replace(convert_from(t.{p}_body, 'UTF8'), t.customer_id::text, n.id::text), 'UTF8')"
    values = ", ".join(f"t.{p}_status, {body.format(p=p)}, greatest(now(), t.{p}_as_of), t.{p}_version" for p in PARTS)
    complete = " AND ".join(f"{p}_status IS NOT NULL" for p in PARTS)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for start in range(0, n, PAD_CHUNK):
            await conn.execute(
                f"""
                WITH tpl AS (
                    SELECT row_number() OVER (ORDER BY customer_id) - 1 AS k, *
                    FROM gateway.customer_view_copy
                    WHERE customer_id = ANY($2::uuid[]) AND survivor_id IS NULL AND profile_status = 200 AND {complete}
                ), n AS (
                    SELECT g, gen_random_uuid() AS id FROM generate_series(1, $1) g
                )
                INSERT INTO gateway.customer_view_copy (customer_id, survivor_id, last_event_at, {parts})
                SELECT n.id, NULL, t.last_event_at, {values}
                FROM n JOIN tpl t ON t.k = n.g % (SELECT count(*) FROM tpl)""",
                min(PAD_CHUNK, n - start),
                [uuid.UUID(c) for c in real_ids],
            )
        await conn.execute("VACUUM ANALYZE gateway.customer_view_copy")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return time.monotonic() - started


async def copy_table_stats(database_url: str) -> dict:
    """Rows and bytes (heap + TOAST + indexes) of the copy table, and the server's shared_buffers."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetchval("SELECT count(*) FROM gateway.customer_view_copy")
        total = await conn.fetchval("SELECT pg_total_relation_size('gateway.customer_view_copy')")
        heap = await conn.fetchval("SELECT pg_relation_size('gateway.customer_view_copy')")
        shared_buffers = await conn.fetchval("SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'")
    finally:
        await conn.close()
    return {
        "rows": rows,
        "total_bytes": total,
        "heap_bytes": heap,
        "bytes_per_row": round(total / max(rows, 1)),
        "shared_buffers_bytes": shared_buffers,
    }


async def schema_sizes(database_url: str) -> dict[str, int]:
    """Bytes of each service's schema (tables with their indexes and TOAST)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT n.nspname, sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
            "AND n.nspname = ANY($1::text[]) GROUP BY n.nspname ORDER BY n.nspname",
            [*SERVICES, "gateway"],
        )
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


async def sample_ids(database_url: str, n: int) -> list[str]:
    """`n` ids drawn uniformly (with replacement) over every row of the copy table."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        all_ids = [str(r[0]) for r in await conn.fetch("SELECT customer_id FROM gateway.customer_view_copy")]
    finally:
        await conn.close()
    rng = random.Random(len(all_ids))
    return [all_ids[rng.randrange(len(all_ids))] for _ in range(n)]


async def check_from_copy(gateway: str, ids: list[str]) -> None:
    """Every sampled view is answered from the copy, fresh: padded ids would otherwise be asked of the owners."""
    async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:
        for cid in ids:
            async with session.get(f"{gateway}/v1/customers/{cid}") as resp:
                if resp.status != 200:
                    raise RuntimeError(f"view of {cid}: {resp.status} {await resp.text()}")
                sources = (await resp.json())["sources"]
                if not all(s["from_copy"] and not s["stale"] for s in sources.values()):
                    raise RuntimeError(f"view of {cid} not served from the copy: {sources}")


BLOCKS = """
SELECT (SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT blks_read FROM pg_stat_database WHERE datname = current_database()),
       (SELECT sum(coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0) + coalesce(toast_blks_hit, 0)
                   + coalesce(tidx_blks_hit, 0))
        FROM pg_statio_all_tables WHERE schemaname = 'gateway' AND relname IN ('customer_view_copy', 'view_part_changed')),
       (SELECT sum(coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) + coalesce(toast_blks_read, 0)
                   + coalesce(tidx_blks_read, 0))
        FROM pg_statio_all_tables WHERE schemaname = 'gateway' AND relname IN ('customer_view_copy', 'view_part_changed'))
"""


async def blocks(database_url: str) -> tuple[int, int, int, int]:
    """PostgreSQL's shared-buffer hits and reads (a read may still come from the OS page cache): the whole
    database's, and those of the view's tables alone (heap, TOAST and indexes)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(BLOCKS)
    finally:
        await conn.close()
    return tuple(int(v or 0) for v in row)  # type: ignore[return-value]


# --- load generators ------------------------------------------------------------------------------------


def open_loop(
    base_url: str, paths: list[str], rate: float, seconds: float, headers: dict[str, str], queue: multiprocessing.Queue
) -> None:
    """Runs in its own process: sends at a fixed rate, latency from each request's scheduled send time."""

    async def run() -> tuple[list[float], dict[int, int]]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        connector = aiohttp.TCPConnector(limit=1000, limit_per_host=1000)
        async with aiohttp.ClientSession(
            base_url, connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=20)
        ) as session:

            async def fire(path: str, scheduled: float) -> None:
                try:
                    async with session.get(path) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                except (aiohttp.ClientError, TimeoutError):  # the client gave up: counted as status 0
                    statuses[0] = statuses.get(0, 0) + 1
                latencies.append(time.perf_counter() - scheduled)

            # Warm the pool so connection setup is not in the figures.
            await asyncio.gather(*(fire(paths[i % len(paths)], time.perf_counter()) for i in range(50)))
            latencies.clear()
            statuses.clear()
            total = int(rate * seconds)
            start = time.perf_counter() + 0.1
            tasks = []
            with harness.generator_collector_off():
                async for i, scheduled in harness.paced(start, rate, total):
                    tasks.append(asyncio.create_task(fire(paths[i % len(paths)], scheduled)))
                await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - start
        return latencies, statuses, elapsed

    latencies, statuses, elapsed = asyncio.run(run())
    queue.put((latencies, statuses, elapsed))


def fixed_rate(base_url: str, paths: list[str], rate: float, seconds: float, headers: dict[str, str]) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=open_loop, args=(base_url, paths, rate, seconds, headers, queue))
    proc.start()
    latencies, statuses, elapsed = queue.get(timeout=seconds * 10 + 60)
    proc.join()
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(ms),
        "rps": len(ms) / elapsed,
        "statuses": statuses,
        "p50_ms": harness.percentile(ms, 50),
        "p95_ms": harness.percentile(ms, 95),
        "p99_ms": harness.percentile(ms, 99),
        "max_ms": max(ms),
    }


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is not installed: installing it with `apt-get install -y wrk` (Debian package) ...")
        result = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if result.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            result = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "wrk"],
                capture_output=True,
                text=True,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        if result.returncode == 0 and shutil.which("wrk"):
            return shutil.which("wrk")
        raise RuntimeError(f"could not install wrk: {result.stderr[-500:]}")
    raise RuntimeError("wrk is needed for the throughput runs: install it (`apt-get install wrk`) and rerun")


def throughput(
    wrk: str, base_url: str, paths: list[str], seconds: float, connections: int, headers: dict[str, str], log_dir: Path
) -> dict:
    name = f"paths-{uuid.uuid4().hex[:6]}"
    script, listed = log_dir / f"{name}.lua", log_dir / f"{name}.txt"
    listed.write_text("".join(p + "\n" for p in paths))  # read by the script: a Lua literal caps its constants
    script.write_text(f"""
paths = {{}}
for line in io.lines("{listed}") do paths[#paths + 1] = line end
non2xx = 0
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
response = function(status, headers, body) if status ~= 200 then non2xx = non2xx + 1 end end
done = function(summary, latency, requests) io.write("non200 ", summary.errors.status, "\\n") end
""")
    argv = [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), base_url]
    for k, v in headers.items():
        argv[1:1] = ["-H", f"{k}: {v}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non200 = int(re.search(r"non200 (\d+)", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else None
    return {
        "rps": rps,
        "requests": requests,
        "non200": non200,
        "socket_errors": errors.group(1) if errors else None,
        "p99_ms": p99_ms,
    }


class CpuMeter:
    """CPU seconds (user + system) of the benchmark's server processes: gateway, services, PostgreSQL with
    its backends (when the benchmark started it; a shared server's other clients would count too)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.baseline: dict[str, float] = {}  # CPU seconds per second while idle (the consumers and relays poll)

    def idle(self, timeout_s: float = 60.0) -> None:
        """Until the servers use under half a core together (idle, they poll: ~0.3): the previous run's queue is
        worked off."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = self.sample()
            time.sleep(1.0)
            after = self.sample()
            self.baseline = {k: max(0.0, after.get(k, 0.0) - v) for k, v in before.items()}
            if sum(self.baseline.values()) < 0.5:
                return

    def sample(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            if (total := harness.process_cpu_seconds(pid, children=name == "postgres")) is not None:
                out[name] = total
        return out

    def per_request(self, before: dict[str, float], after: dict[str, float], requests: int, seconds: float) -> dict[str, float]:
        """Milliseconds of CPU per request, per process group ("app": gateway + services; "postgres"), less
        what the processes use idle over the run."""
        used = {k: max(0.0, after.get(k, 0.0) - before.get(k, 0.0) - self.baseline.get(k, 0.0) * seconds) for k in after}
        app = sum(v for k, v in used.items() if k != "postgres")
        out = {"app_cpu_ms": 1000 * app / max(requests, 1), "gateway_cpu_ms": 1000 * used.get("gateway", 0.0) / max(requests, 1)}
        if "postgres" in used:
            out["postgres_cpu_ms"] = 1000 * used["postgres"] / max(requests, 1)
        return out


def measure(
    urls: dict[str, str],
    pids: dict[str, int | None],
    database_url: str,
    ids: list[str],
    args: argparse.Namespace,
    wrk: str,
    log_dir: Path,
) -> dict:
    auth = {"X-API-Key": ADMIN_KEY}
    # Direct reads carry the token the gateway would sign (one, valid for the whole run): the service verifies
    # it either way, so the comparison isolates the gateway's own work.
    direct = {INTERNAL_TOKEN_HEADER: harness.internal_token("lifecycle", ttl_s=6 * args.seconds + 600)}
    rng = random.Random(5)
    sample = [ids[rng.randrange(len(ids))] for _ in range(2000)]
    composed = [f"/v1/customers/{c}" for c in sample]
    single = [f"/v1/customers/{c}/lifecycle" for c in sample]
    meter = CpuMeter(pids)
    print(
        f"waiting for the events to stop, then filling the gateway's view copy for the {len(set(sample))} measured customers ..."
    )
    asyncio.run(fill_copy(urls["gateway"], database_url, sorted(set(sample))))
    results = {}
    print(f"closed loop (wrk, {args.connections} connections) for {args.seconds:.0f}s each ...")
    runs = {
        "wrk_single_gateway": (urls["gateway"], single, auth),
        "wrk_single_direct": (urls["lifecycle"], single, direct),
        "wrk_composed_copy": (urls["gateway"], composed, auth),
        "wrk_composed_fanout": (urls["gateway"], composed, auth | {"Cache-Control": "no-cache"}),
        "wrk_owner_floor": (urls["lifecycle"], ["/health/live"], {}),
    }
    for name, (base, paths, headers) in runs.items():
        meter.idle()
        before = meter.sample()
        results[name] = throughput(wrk, base, paths[:500], args.seconds, args.connections, headers, log_dir)
        results[name] |= meter.per_request(before, meter.sample(), results[name]["requests"], args.seconds)
    # Open loop last: an overloaded run leaves the servers a queue of requests its client gave up on.
    print(f"open loop at {args.rate:.0f} rps for {args.seconds:.0f}s each ...")
    for name, base, paths, headers in (
        ("composed_gateway", urls["gateway"], composed, auth),
        ("single_gateway", urls["gateway"], single, auth),
        ("single_direct", urls["lifecycle"], single, direct),
    ):
        meter.idle()
        results[name] = fixed_rate(base, paths, args.rate, args.seconds, headers)
    for name, r in results.items():
        # Under overload the gateway answers 503 (the service did not answer in time) or the client gives up
        # (status 0): that is a measurement. Anything else that is not a 200 is a wrong answer.
        wrong = {s: n for s, n in r.get("statuses", {}).items() if s not in (200, 503, 0)}
        if wrong:
            raise RuntimeError(f"{name}: responses other than 200/503: {wrong}")
    return results


def measure_growth(
    urls: dict[str, str],
    pids: dict[str, int | None],
    database_url: str,
    ids: list[str],
    args: argparse.Namespace,
    wrk: str,
    log_dir: Path,
) -> list[dict]:
    """The composed view from the copy at the loaded customers alone and at each padding level, hot and uniform."""
    auth = {"X-API-Key": ADMIN_KEY}
    print(f"filling the gateway's view copy for all {len(ids)} loaded customers ...")
    asyncio.run(fill_copy(urls["gateway"], database_url, ids))
    sizes = asyncio.run(schema_sizes(database_url))
    print(
        f"  bytes per loaded customer, each schema with its indexes, TOAST, outbox and inbox ({len(ids)} customers): "
        + ", ".join(f"{k} {v / len(ids):.0f}" for k, v in sizes.items())
    )
    rows: list[dict] = [{"schema_bytes": sizes, "customers": len(ids)}]
    padded = 0
    for level in [0, *args.pad_copy]:
        setup_s = 0.0
        if level:
            print(f"padding the copy with {level - padded} synthetic customers (to {level} padded) ...")
            setup_s = asyncio.run(pad_copy(database_url, level - padded, ids))
            padded = level
            print(f"  padded, VACUUM ANALYZE and CHECKPOINT in {setup_s:.0f} s (setup, not measured)")
        table = asyncio.run(copy_table_stats(database_url))
        print(
            f"  copy table: {table['rows']} rows, {table['total_bytes'] / 2**20:.0f} MiB with indexes and TOAST "
            f"({table['bytes_per_row']} B per row); shared_buffers {table['shared_buffers_bytes'] / 2**20:.0f} MiB"
        )
        sets = {"hot": [ids[random.Random(level + 1).randrange(len(ids))] for _ in range(20_000)]}
        if level:
            sets["uniform"] = asyncio.run(sample_ids(database_url, 100_000))
        for read_set, chosen in sets.items():
            asyncio.run(check_from_copy(urls["gateway"], random.Random(7).sample(chosen, 100)))
            paths = [f"/v1/customers/{c}" for c in chosen]
            row = {"level_rows": table["rows"], "padded": level, "read_set": read_set, "setup_s": round(setup_s, 1)}
            row |= {f"table_{k}": v for k, v in table.items()}
            for loop in ("closed", "open"):
                row |= _growth_run(urls, pids, database_url, paths, args, wrk, log_dir, auth, loop)
            rows.append(row)
            print(
                f"  {table['rows']:>9} rows {read_set:<8} closed {row['closed_rps']:>6.0f} rps "
                f"p99 {row['closed_p99_ms']:.1f} ms, "
                f"CPU {row['closed_cpu_ms']:.2f} ms/view, blocks/view hit {row['closed_table_hit']:.1f} read "
                f"{row['closed_table_read']:.2f} (db {row['closed_db_hit']:.1f}/{row['closed_db_read']:.2f}), "
                f"load {row['closed_load']}; open @{args.rate:.0f}: p50 {row['open_p50_ms']:.1f} p99 "
                f"{row['open_p99_ms']:.1f} ms, {row['open_errors']} errors, load {row['open_load']}"
            )
    return rows


def _growth_run(
    urls: dict[str, str],
    pids: dict[str, int | None],
    database_url: str,
    paths: list[str],
    args: argparse.Namespace,
    wrk: str,
    log_dir: Path,
    auth: dict[str, str],
    loop: str,
) -> dict:
    """One measured run (closed loop: wrk over every path; open loop: at --rate), with CPU, buffer blocks per
    view and the 1-minute load average at its end."""
    meter = CpuMeter(pids)
    meter.idle()
    blocks_before = asyncio.run(blocks(database_url))
    before = meter.sample()
    if loop == "closed":
        r = throughput(wrk, urls["gateway"], paths, args.seconds, args.connections, auth, log_dir)
        errors = r["non200"]
        out = {"closed_rps": r["rps"], "closed_p99_ms": r["p99_ms"] or float("nan")}
    else:
        r = fixed_rate(urls["gateway"], paths[:5000], args.rate, args.seconds, auth)
        errors = sum(n for s, n in r["statuses"].items() if s != 200)
        out = {"open_rps": r["rps"], "open_p50_ms": r["p50_ms"], "open_p99_ms": r["p99_ms"]}
    cpu = meter.per_request(before, meter.sample(), r["requests"], args.seconds)
    load = os.getloadavg()[0]
    time.sleep(harness.STATS_FLUSH_S)
    blocks_after = asyncio.run(blocks(database_url))
    per = [(a - b) / max(r["requests"], 1) for a, b in zip(blocks_after, blocks_before, strict=True)]
    return out | {
        f"{loop}_errors": errors,
        f"{loop}_requests": r["requests"],
        f"{loop}_cpu_ms": cpu["app_cpu_ms"] + cpu.get("postgres_cpu_ms", 0.0),
        f"{loop}_gateway_cpu_ms": cpu["gateway_cpu_ms"],
        f"{loop}_postgres_cpu_ms": cpu.get("postgres_cpu_ms", float("nan")),
        f"{loop}_db_hit": per[0],
        f"{loop}_db_read": per[1],
        f"{loop}_table_hit": per[2],
        f"{loop}_table_read": per[3],
        f"{loop}_load": round(load, 2),
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(results: dict, args: argparse.Namespace) -> dict:
    print(f"\n{'run':<28}{'rps':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'not 200':>9}")
    open_runs = [n for n in ("composed_gateway", "single_gateway", "single_direct") if n in results]
    for name in open_runs:
        r = results[name]
        r["not_200"] = sum(n for s, n in r["statuses"].items() if s != 200)
        print(
            f"{name + ' @' + str(int(args.rate)):<28}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
            f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['not_200']:>9}"
        )
    print(f"\n{'closed loop (wrk)':<28}{'rps':>9}{'p99 ms':>9}{'not 200':>9}{'app CPU ms/req':>16}{'gw CPU':>8}{'pg CPU':>8}")
    wrk_runs = [
        n
        for n in (
            "wrk_single_gateway",
            "wrk_single_direct",
            "wrk_composed_copy",
            "wrk_composed_fanout",
            "wrk_owner_floor",
        )
        if n in results
    ]
    for name in wrk_runs:
        r = results[name]
        print(
            f"{name:<28}{r['rps']:>9.0f}{r['p99_ms'] or float('nan'):>9.1f}{r['non200']:>9}{r['app_cpu_ms']:>16.2f}"
            f"{r['gateway_cpu_ms']:>8.2f}{r.get('postgres_cpu_ms', float('nan')):>8.2f}"
        )
    ratio = results["wrk_single_gateway"]["rps"] / results["wrk_single_direct"]["rps"]
    cost = 1 - ratio
    copy, fanout, floor = (results[n]["rps"] for n in ("wrk_composed_copy", "wrk_composed_fanout", "wrk_owner_floor"))
    open_run = results["composed_gateway"]
    p99, errors = open_run["p99_ms"], open_run["not_200"]
    print(
        f"\nfigures against their goals ({os.cpu_count()} cores shared by the servers, PostgreSQL, Kafka and the load "
        f"generator; {args.customers} customers):"
    )
    print(f"  composed view closed loop: {copy:.0f} rps (goal ≥ 1,000: {_verdict(copy >= 1000)})")
    print(
        f"  composed view open loop at {args.rate:.0f} rps: p99 {p99:.1f} ms, {errors} errors "
        f"(goal p99 ≤ 25 ms and 0 errors: {_verdict(p99 <= 25 and errors == 0)})"
    )
    print(
        f"  single-service read, gateway / direct: {ratio:.2f} → the gateway costs {max(cost, 0):.0%} "
        f"(goal ≤ 10%: {_verdict(cost <= 0.10)})"
    )
    print(
        f"  the two designs, this run: copy {copy:.0f} rps vs owners' fan-out {fanout:.0f} rps = {copy / fanout:.1f}×; "
        f"an owner read that does no work runs at {floor:.0f} rps, so four per view (ready documents) "
        f"stay ≤ {floor / 4:.0f} views/s of owner work alone"
    )
    # Design (b), ready documents, at its best: four owner reads per view, each at least the gateway's cost of
    # proxying one read plus an owner request that does no work (both measured above), on all the cores.
    b_ms = 4 * (results["wrk_single_gateway"]["gateway_cpu_ms"] + results["wrk_owner_floor"]["app_cpu_ms"])
    copy_run = results["wrk_composed_copy"]
    a_ms = copy_run["app_cpu_ms"] + copy_run.get("postgres_cpu_ms", 0.0)
    cores = os.cpu_count() or 1
    print(
        f"  CPU per view: copy {a_ms:.2f} ms (app + PostgreSQL) → at most {cores * 1000 / a_ms:.0f} views/s on "
        f"{cores} cores; ready documents ≥ {b_ms:.2f} ms (4 × (gateway proxying + an owner request doing nothing)) "
        f"→ at most {cores * 1000 / b_ms:.0f} views/s"
    )
    growth = [g for g in results.get("growth", []) if "read_set" in g]
    sizes = next((g for g in results.get("growth", []) if "schema_bytes" in g), None)
    if growth:
        print(
            f"\nhow cost grows: the composed view from the copy (closed loop: wrk, {args.connections} connections; open "
            f"loop at {args.rate:.0f} rps); CPU = app + PostgreSQL ms per view; blocks per view of the view's tables "
            "(shared-buffer hits / reads), then of the whole database; load = 1-minute load average at the run's end"
        )
        print(
            f"{'rows':>9} {'set':<8}{'rps':>7}{'p99':>8}{'CPU':>6}{'hit':>6}{'read':>6}{'db hit':>8}{'db rd':>7}{'load':>6}"
            f"  |{'p50':>7}{'p99':>8}{'err':>5}{'CPU':>6}{'hit':>6}{'read':>6}{'load':>6}"
        )
        for g in growth:
            print(
                f"{g['level_rows']:>9} {g['read_set']:<8}{g['closed_rps']:>7.0f}{g['closed_p99_ms']:>8.1f}"
                f"{g['closed_cpu_ms']:>6.2f}{g['closed_table_hit']:>6.1f}{g['closed_table_read']:>6.2f}"
                f"{g['closed_db_hit']:>8.1f}{g['closed_db_read']:>7.2f}{g['closed_load']:>6.2f}  |"
                f"{g['open_p50_ms']:>7.1f}{g['open_p99_ms']:>8.1f}{g['open_errors']:>5}{g['open_cpu_ms']:>6.2f}"
                f"{g['open_table_hit']:>6.1f}{g['open_table_read']:>6.2f}{g['open_load']:>6.2f}"
            )
        last = growth[-1]
        print(
            f"  copy table at {last['table_rows']} rows: {last['table_total_bytes'] / 2**30:.2f} GiB with indexes and "
            f"TOAST, {last['table_bytes_per_row']} B per customer (shared_buffers "
            f"{last['table_shared_buffers_bytes'] / 2**20:.0f} MiB)"
        )
    if any(results[n].get("non200") for n in wrk_runs):
        raise RuntimeError(f"wrk saw responses other than 200: {results}")
    figures = {
        "benchmark": "gateway",
        "customers": args.customers,
        "pad_copy": args.pad_copy,
        "rate": args.rate,
        "seconds": args.seconds,
        **{
            f"{name}_{k}": round(v, 2)
            for name in open_runs
            for k, v in results[name].items()
            if isinstance(v, (float, int)) and k != "requests"
        },
        **{
            f"{name}_{k}": round(v, 3)
            for name in wrk_runs
            for k, v in results[name].items()
            if isinstance(v, (float, int)) and k not in ("requests", "non200")
        },
        "gateway_over_direct": round(ratio, 3),
        "gateway_cost": round(cost, 3),
        "copy_over_fanout": round(copy / fanout, 2),
        "copy_cpu_ms_per_view": round(a_ms, 3),
        "ready_documents_cpu_ms_per_view_at_least": round(b_ms, 3),
        "composed_rps_met": copy >= 1000,
        "p6_p99_met": p99 <= 25 and errors == 0,
        "cost_met": cost <= 0.10,
    }
    if sizes:
        figures["schema_bytes_at_loaded_customers"] = sizes
    if growth:
        figures["growth"] = [{k: round(v, 3) if isinstance(v, float) else v for k, v in g.items()} for g in growth]
    return figures
