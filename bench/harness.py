"""What every benchmark shares: the real servers, fresh migrated databases, phase timing, the final JSON line.

Like the test suite, benchmarks never mock the infrastructure. `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS`
point them at servers that already run; otherwise a PostgreSQL and a Kafka broker are started under a
temporary directory and stopped on exit. The context managers here are synchronous on purpose: migrations
run their own event loop, so set up first, then `asyncio.run` the measured part inside.
"""

import asyncio
import contextlib
import dataclasses
import gc
import json
import math
import os
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import asyncpg
import sqlalchemy as sa
import uvloop
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import make_url
from yarl import URL

from deploy.local.kafka import KafkaBroker, create_topics, ensure_jars
from deploy.local.postgres import PostgresServer
from shared.db import asyncpg_dsn
from shared.internal_auth import Caller, TokenSigner, generate_keypair
from shared.messaging.inbox import InboxConsumer
from shared.messaging.kafka import KafkaConsumer, KafkaTransport
from shared.migrations import upgrade

from gateway.upstream_pool import ConnectionPool, RawResponse

REPO = Path(__file__).resolve().parents[1]
# PostgreSQL's cumulative statistics (buffer hits and reads, WAL) lag: a backend flushes them when idle, at
# most 10 s later (PostgreSQL 15+). A benchmark reading them after a load waits this long first.
STATS_FLUSH_S = 11.0


INTERNAL_KEYS = ("INTERNAL_TOKEN_PRIVATE_KEY", "INTERNAL_TOKEN_PUBLIC_KEY")


@contextlib.contextmanager
def generator_collector_off() -> Iterator[None]:
    """The load generator's cyclic garbage collector off while it offers load; one full collection after.

    A load generator holds every request's outcome until it reports, and Python's full collections walk that
    growing heap. Measured in `bench http_ingest` (2,000 single-event requests/s, 2026-12-07): they paused the
    generator for 94-222 ms every 3-4 s. Nothing is sent or read during a pause; the requests due then leave
    together, and near the system's capacity such a burst takes seconds to drain. In two runs, every episode of
    shed requests began at one of these pauses (2.9 s, 7.0, 10.3, 16.2; 2.8, 9.2, 13.4, 17.0): the generator's
    pause, counted as the system's. The garbage a run leaves is mostly freed by reference counting; the rest (a
    few cycles per request) waits for the collection at the end.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


class LeanClient:
    """The load generators' HTTP client: the gateway's own keep-alive client (gateway/upstream_pool.py, one `send`
    per request, answers parsed by httptools), to be run on uvloop (`run_async`). A generator shares the two cores
    with what it measures, so its own CPU is taken from the system: aiohttp's client (`bench http_ingest --client
    aiohttp`) cost ~0.4 ms of CPU per request here, as much as the gateway's whole hop, and httpx's (the freshness
    benchmark's until 2026-12-07) more (docs/development.md, "The load generators")."""

    def __init__(self, base_url: str, key: str, *, limit: int = 2000, timeout_s: float | None = 30.0) -> None:
        url = URL(base_url)
        assert url.host is not None and url.port is not None
        self.pool = ConnectionPool(url.host, url.port, limit=limit, keepalive_s=4.0, connect_timeout_s=5.0)
        self.headers = f"host: {url.host}:{url.port}\r\nx-api-key: {key}\r\n"
        self.timeout_s = timeout_s

    async def post(self, path: str, body: bytes) -> RawResponse:
        """POST a JSON body; raises TimeoutError after `timeout_s` (None: no bound) and the pool's errors."""
        head = f"POST {path} HTTP/1.1\r\n{self.headers}content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        async with asyncio.timeout(self.timeout_s):
            return await self.pool.request(head.encode() + body, head=False)

    async def get(self, path: str) -> RawResponse:
        async with asyncio.timeout(self.timeout_s):
            return await self.pool.request(f"GET {path} HTTP/1.1\r\n{self.headers}\r\n".encode(), head=False)

    async def close(self) -> None:
        self.pool.close()


def run_async(coro):
    """Runs a load generator's coroutine on uvloop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def paced(start: float, rate: float, total: int) -> AsyncIterator[tuple[int, float]]:
    """An open loop's schedule: request i of `total` is due at `start + i / rate`; each (i, due time) is yielded
    once it is due. A generator that falls behind gets the late ones at once: latency is measured from the due
    time, so its delay counts as latency instead of thinning the load."""
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i, scheduled


def internal_keys() -> dict[str, str]:
    """The gateway keypair the benchmark's processes get: the environment's, else one made for this run."""
    if not os.environ.get("INTERNAL_TOKEN_PRIVATE_KEY"):
        os.environ["INTERNAL_TOKEN_PRIVATE_KEY"], os.environ["INTERNAL_TOKEN_PUBLIC_KEY"] = generate_keypair()
    return {k: os.environ[k] for k in INTERNAL_KEYS}


def internal_token(service: str, ttl_s: float) -> str:
    """A token for calling `service` directly, as the gateway would for an admin; valid for `ttl_s`."""
    signer = TokenSigner(internal_keys()["INTERNAL_TOKEN_PRIVATE_KEY"], ttl_s=ttl_s)
    return signer.token(service, Caller("bench", "admin"))


@contextlib.contextmanager
def servers(kafka: bool = True) -> Iterator[tuple[str, str]]:
    """(PostgreSQL server URL, Kafka bootstrap): the environment's, else started now and stopped on exit.

    `kafka=False`: no broker is started and the bootstrap is "" (unless the environment names one)."""
    url, bootstrap = os.environ.get("DATABASE_URL"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with contextlib.ExitStack() as stack:
        if not (url and (bootstrap or not kafka)):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-")))
        if not url:
            print("starting PostgreSQL ...")
            postgres = PostgresServer(tmp / "postgres")
            stack.callback(postgres.stop)
            postgres.start()
            url = postgres.async_url("postgres")
        if kafka and not bootstrap:
            print("starting Kafka ...")
            ensure_jars()
            broker = KafkaBroker(tmp / "kafka")
            stack.callback(broker.stop)
            broker.start()
            bootstrap = broker.bootstrap
        yield url, bootstrap or ""


@contextlib.contextmanager
def database(server_url: str, services: Iterable[str]) -> Iterator[str]:
    """A new database (async SQLAlchemy URL) with each service's schema migrated to head; dropped on exit."""
    server = make_url(server_url).set(drivername="postgresql+asyncpg")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    url = server.set(database=name).render_as_string(hide_password=False)
    admin = asyncpg_dsn(server.set(database="postgres").render_as_string(hide_password=False))
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        for service in services:
            upgrade(REPO / "services" / service / service / "migrations", service, url)
        yield url
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def topics(bootstrap: str, names: list[str], partitions: int = 3) -> Iterator[None]:
    """Create topics for one run and delete them after, so a shared broker does not keep the benchmark's data."""
    create_topics(bootstrap, names, partitions)
    try:
        yield
    finally:
        asyncio.run(_delete_topics(bootstrap, names))


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


class Stopwatch:
    """perf_counter totals per named phase: cheap enough to wrap every batch of a measured run."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] += time.perf_counter() - started

    def reset(self) -> None:
        self.totals.clear()


class TimedInboxConsumer(InboxConsumer):
    """A service's inbox consumer, unchanged but for phase timing and a stop after `expected` messages.

    Phases: fetch (via `TimedKafkaTransport`), parse, apply, claim (inside apply), `handler_phase` (the
    subscription's handler, inside apply) and offsets (the commit, which overlaps the next batch). Timings the
    handler records itself go in `timings`; both start over at the first batch (steady state).
    """

    def __init__(
        self,
        *,
        expected: int,
        watch: Stopwatch,
        handler_phase: str = "handler",
        timings: dict[str, float] | None = None,
        **kwargs,
    ) -> None:
        handler = kwargs["subscription"].handler

        async def timed_handler(session, events) -> None:
            with watch.phase(handler_phase):
                await handler(session, events)

        kwargs["subscription"] = dataclasses.replace(kwargs["subscription"], handler=timed_handler)
        super().__init__(**kwargs)
        self.expected, self.watch, self.timings = expected, watch, timings if timings is not None else {}
        self.seen = 0
        self.first_at = self.finished_at = 0.0
        self.cpu_at_first = self.cpu_at_finish = 0.0  # this process's CPU (time.process_time) then
        self.commits = 0  # offset commits made in the steady state
        self.batch_seconds: list[float] = []
        self.done = asyncio.Event()

    async def process(self, batch) -> None:
        started = time.perf_counter()
        if not self.first_at:  # steady state starts here: the first fetch waited for the group join
            self.watch.reset()
            self.timings.clear()
            self.first_at = started
            self.cpu_at_first = time.process_time()
        await super().process(batch)
        self.finished_at = time.perf_counter()
        self.cpu_at_finish = time.process_time()
        self.batch_seconds.append(self.finished_at - started)
        self.seen += len(batch)
        if self.seen >= self.expected:
            self.stop()
            self.done.set()

    def _parse(self, batch):
        with self.watch.phase("parse"):
            return super()._parse(batch)

    async def _apply(self, events) -> None:
        with self.watch.phase("apply"):
            await super()._apply(events)

    async def _claim(self, session, events):
        with self.watch.phase("claim"):
            return await super()._claim(session, events)

    async def _commit(self, consumer, offsets) -> None:
        self.commits += 1 if self.first_at else 0
        with self.watch.phase("offsets"):
            await super()._commit(consumer, offsets)


class TimedKafkaTransport(KafkaTransport):
    """The Kafka transport whose consumers time their fetches (`getmany`) as the phase "fetch"."""

    def __init__(self, bootstrap: str, watch: Stopwatch, client_id: str = "bench") -> None:
        super().__init__(bootstrap, client_id=client_id)
        self.watch = watch

    def consumer(self, group_id: str, topics: list[str], pattern: str | None = None) -> KafkaConsumer:
        return _TimedKafkaConsumer(self.watch, self.bootstrap_servers, group_id, topics, self.client_id, pattern)


class _TimedKafkaConsumer(KafkaConsumer):
    def __init__(self, watch: Stopwatch, *args) -> None:
        super().__init__(*args)
        self.watch = watch

    async def getmany(self, timeout_ms: int, max_records: int):
        with self.watch.phase("fetch"):
            return await super().getmany(timeout_ms, max_records)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), interpolating between closest ranks like numpy's default."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def emit(figures: dict) -> None:
    """The machine-readable result: one JSON object, the last line a benchmark prints."""
    print(json.dumps(figures), flush=True)


def create_api_key(
    gateway: str,
    admin_key: str,
    *,
    name: str,
    role: str = "admin",
    partner_id: str | None = None,
    rate_limit_per_s: float | None = None,
) -> str:
    """A new API key minted through the gateway's own API (`POST /v1/api-keys`), as a user would: a benchmark
    that needs more than the default per-key rate asks for its key with the rate it needs."""
    import httpx  # only the benchmarks that talk to a gateway need it

    body: dict = {"name": name, "role": role}
    if partner_id is not None:
        body["partner_id"] = partner_id
    if rate_limit_per_s is not None:
        body["rate_limit_per_s"] = rate_limit_per_s
    resp = httpx.post(f"{gateway}/v1/api-keys", json=body, headers={"X-API-Key": admin_key}, timeout=30.0)
    if resp.status_code != 201:
        raise AssertionError(f"could not create the benchmark's API key: {resp.status_code} {resp.text[:300]}")
    return resp.json()["key"]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its children (from /proc; 0 once it has gone)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                pids.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration):
            continue
    return total


class RssSampler:
    """Samples the RSS of named processes every `interval_s` in a thread: the peak and the last sample of each."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.5) -> None:
        import threading

        self.pids, self.interval_s = pids, interval_s
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.last: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                rss = rss_bytes(pid)
                if rss:
                    self.last[name] = rss
                    self.peak[name] = max(self.peak[name], rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (from /proc; 0 once it has gone)."""
    try:  # fields 14 and 15 (after the parenthesised name): user and system time in clock ticks
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU so far of a process, with all its children if asked (PostgreSQL's postmaster: its
    backends, WAL writer, checkpointer); None when it is not on this machine or has gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *(root.children(recursive=True) if children else [])]
    except psutil.Error:
        return None
    return sum(cpu_seconds(proc.pid) for proc in procs)  # a child that ended meanwhile counts 0


async def postgres_pid(database_url: str) -> int | None:
    """The PostgreSQL server's postmaster (its backends are its children), when it runs on this machine."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        data_dir = await conn.fetchval("SHOW data_directory")
    finally:
        await conn.close()
    try:
        return int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def postgres_cpu_seconds(database_url: str) -> float | None:
    """CPU so far of the PostgreSQL server's processes (backends, WAL writer, checkpointer, …): what a load costs
    the database beyond its own connections; None when the server is not on this machine."""
    pid = await postgres_pid(database_url)
    return None if pid is None else process_cpu_seconds(pid, children=True)


def kafka_cpu_seconds(bootstrap: str) -> float | None:
    """CPU so far of the Kafka broker listening at `bootstrap` (host:port) on this machine, else None."""
    import psutil

    port = int(bootstrap.rsplit(":", 1)[-1])
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return process_cpu_seconds(conn.pid, children=True)
    return None


async def server_cost(sessions) -> dict:
    """The WAL position and the CPU seconds used so far by this database's backends (read from /proc: the
    harness's Postgres runs on this machine; None when it does not). Load-independent, unlike wall time."""
    async with sessions() as session:
        lsn = (await session.execute(sa.text("SELECT pg_current_wal_lsn()::text"))).scalar_one()
        # Checkpoints so far (PostgreSQL 17+): one that starts during a run costs it seconds of I/O.
        checkpoints = (
            await session.execute(
                sa.text(
                    "SELECT CASE WHEN to_regclass('pg_catalog.pg_stat_checkpointer') IS NOT NULL"
                    " THEN (SELECT num_timed + num_requested FROM pg_stat_checkpointer) END"
                )
            )
        ).scalar_one()
        backends = await session.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        pids = backends.scalars().all()
    ticks: dict[int, int] | None = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            ticks = None
            break
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    return {"lsn": lsn, "ticks": ticks, "checkpoints": checkpoints}


def cost_since(before: dict, after: dict) -> dict:
    hi, lo = (int(x, 16) for x in before["lsn"].split("/"))
    hi2, lo2 = (int(x, 16) for x in after["lsn"].split("/"))
    wal = ((hi2 << 32) + lo2) - ((hi << 32) + lo)
    cpu = None
    if before["ticks"] is not None and after["ticks"] is not None:
        hz = os.sysconf("SC_CLK_TCK")
        cpu = round(sum(t - before["ticks"].get(pid, 0) for pid, t in after["ticks"].items()) / hz, 2)
    checkpoints = None
    if before["checkpoints"] is not None and after["checkpoints"] is not None:
        checkpoints = after["checkpoints"] - before["checkpoints"]
    return {"postgres_cpu_s": cpu, "wal_mb": round(wal / 1e6, 1), "wal_bytes": wal, "checkpoints": checkpoints}
