"""Proving ground: the whole system, two replicas of each service, a seeded random workload and crashes; then invariants.

Every service (interaction, segmentation, clv, lifecycle, gateway) runs as two OS processes on a Kafka broker
and a PostgreSQL server of the run's own (so they can be killed), each service's replicas behind a small TCP
balancer (what a Kubernetes Service does). Topics are created with several partitions before the start.

A workload drawn from one seed goes in through both doors (the gateway's `POST /v1/events` with a partner
key, and the `partner.events` topic): sign-ups whose shared e-mail merges customers, unmerges, orders,
refunds, cancellations, deals, feedback, duplicates (same id resent, through either door), late and
out-of-order events, manual stage moves, lifecycle rule changes, rule segments, jobs (fits, scorings,
segmentation runs) and erasures. Meanwhile faults are injected: kill -9 of a random replica, of the broker
and of PostgreSQL, each restarted on the same port and data.

After the last fault the run waits for quiescence (every consumer group at zero lag, every outbox sent, no
job queued or running, no webhook delivery pending, twice in a row) and checks the invariants; each prints
its divergences one by one (never a sum). The same code runs as the test `tests/e2e/test_proving_ground.py`
(small workload) and as `python -m bench proving_ground --seed N --events N --faults N`, whose last line is
JSON: seed, events, faults, invariants_checked, divergences, quiescence_seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer import AIOKafkaConsumer

from bench import harness
from deploy.local.kafka import KafkaBroker, create_topics, ensure_jars
from deploy.local.ports import free_port
from deploy.local.postgres import PostgresServer
from shared.contracts.topics import ALL, LIFECYCLE_EVENTS, PARTNER_EVENTS, dlq
from shared.db import asyncpg_dsn
from shared.migrations import upgrade
from tests.e2e.processes import ServiceProcess, log_tail, process_env, serve_argv
from tests.support import read_all

SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
SCHEMAS = [*SERVICES, "gateway"]
SOURCE = "pg-shop"
ADMIN_KEY = "proving-ground-admin-key-2b7e"
CURRENCIES = ["EUR", "USD"]
STAGES = ["approach", "acquisition", "development", "retention", "loyalty", "churned"]
# Jobs: (schema.table, status column); `queued`/`running` rows mean "not quiet yet".
JOB_TABLES = ["clv.model_fit", "clv.scoring_run", "segmentation.segmentation_run", "lifecycle.replay_run"]
INGEST_INBOX = "interaction.partner-ingest"


@dataclasses.dataclass
class Config:
    seed: int
    events: int = 600  # partner events offered (duplicates included)
    faults: int = 3
    customers: int = 60
    replicas: int = 2
    partitions: int = 4
    quiescence_timeout_s: float = 240.0
    seconds_per_fault: float = 12.0

    @property
    def min_seconds(self) -> float:
        return 10.0 + self.faults * self.seconds_per_fault

    log_dir: Path | None = None


# --- Infrastructure: own Postgres and Kafka (they get killed), balancers, replicas -----------------------------


class Balancer:
    """A TCP balancer on a fixed port in front of a service's replicas: each connection goes to the next replica
    that accepts it (a killed one refuses, so the other takes over), like a Kubernetes Service."""

    def __init__(self, name: str, targets: list[int]) -> None:
        self.name, self.targets = name, targets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"balancer-{name}", daemon=True)

    def start(self) -> Balancer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.targets)):
            port = self.targets[self._next % len(self.targets)]
            self._next += 1
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class WebhookReceiver:
    """A local HTTP endpoint that records every delivery (body as JSON) in arrival order."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with contextlib.suppress(ValueError):
                    received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


class Cluster:
    """Postgres, Kafka, `replicas` processes per service and the gateway, balancers in front."""

    def __init__(self, cfg: Config, root: Path) -> None:
        self.cfg, self.root = cfg, root
        self.logs = cfg.log_dir or root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.postgres = PostgresServer(root / "postgres")
        self.kafka = KafkaBroker(root / "kafka")
        self.prefix = f"pg{uuid.uuid4().hex[:6]}."
        self.replicas: dict[str, list[ServiceProcess]] = {}
        self.balancers: dict[str, Balancer] = {}
        self.database_url = ""

    @property
    def gateway(self) -> str:
        return self.balancers["gateway"].url

    def url(self, service: str) -> str:
        return self.balancers[service].url

    def dsn(self) -> str:
        return asyncpg_dsn(self.database_url)

    def start(self) -> None:
        print("starting PostgreSQL and Kafka ...")
        harness.internal_keys()  # the gateway's keypair in the environment the service processes inherit
        ensure_jars()
        self.postgres.start()
        self.kafka.start()
        self.postgres.create_database("crm")
        self.database_url = self.postgres.async_url("crm")
        for schema in SCHEMAS:
            upgrade(harness.REPO / "services" / schema / schema / "migrations", schema, self.database_url)
        create_topics(
            self.kafka.bootstrap, [self.prefix + t for t in ALL] + [self.prefix + dlq(t) for t in ALL], self.cfg.partitions
        )
        shared = {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "TOPIC_PREFIX": self.prefix,
            "TRANSPORT": "kafka",
            "LOG_JSON": "false",
            "LOG_LEVEL": "WARNING",
            # Scheduled work runs often, so "once across replicas" is exercised during the run.
            "SEGMENTATION_SCHEDULE_INTERVAL_S": "20",
            "SEGMENTATION_SCHEDULE_KINDS": '["rfm"]',
            "LIFECYCLE_SWEEP_INTERVAL_S": "15",
            # Short leases: a killed replica's jobs are taken over (or failed) within seconds.
            "CLV_JOB_LEASE_S": "6",
            "SEGMENTATION_JOB_LEASE_S": "6",
            "LIFECYCLE_JOB_LEASE_S": "6",
        }
        ports = {s: [free_port() for _ in range(self.cfg.replicas)] for s in [*SERVICES, "gateway"]}
        for service in SERVICES:
            self.balancers[service] = Balancer(service, ports[service]).start()
        gateway_env = {f"GATEWAY_{s.upper()}_URL": self.balancers[s].url for s in SERVICES}
        gateway_env |= {
            "GATEWAY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
            "GATEWAY_LOG_JSON": "false",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "GATEWAY_WEBHOOK_POLL_INTERVAL_S": "0.5",
            "GATEWAY_WEBHOOK_BACKOFF_BASE_S": "0.5",
            "GATEWAY_WEBHOOK_BACKOFF_MAX_S": "5",
            "GATEWAY_WEBHOOK_MAX_ATTEMPTS": "50",
            "GATEWAY_RATE_LIMIT_PER_S": "10000",
            "GATEWAY_RATE_LIMIT_BURST": "10000",
            # The webhook receiver is local: allowed explicitly (webhooks go to public addresses only).
            "GATEWAY_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        }
        self.balancers["gateway"] = Balancer("gateway", ports["gateway"]).start()
        for service in [*SERVICES, "gateway"]:
            env = shared | (gateway_env if service == "gateway" else {})
            self.replicas[service] = [
                ServiceProcess(f"{service}-{i}", serve_argv(service, port), process_env(env), port, self.logs)
                for i, port in enumerate(ports[service])
            ]
        everyone = self.processes()
        print(f"starting {len(everyone)} service processes ...")
        for p in everyone:
            p.start()
        for p in everyone:
            p.wait_healthy("ready", 120)

    def footprint_mb(self) -> dict[str, int]:
        """Resident memory (MiB) of the service processes, the broker and PostgreSQL (its backends included)."""

        def rss(pids: list[int]) -> int:
            total = 0
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            return total // 2**20

        services = rss([p.proc.pid for p in self.processes() if p.proc is not None and p.proc.poll() is None])
        postmaster = self.postgres._postmaster()  # the live postmaster of this data dir
        return {
            "services": services,
            "kafka": rss([self.kafka.pid] if self.kafka.pid else []),
            "postgres": rss([postmaster[0].pid] if postmaster else []),
        }

    def processes(self) -> list[ServiceProcess]:
        return [p for ps in self.replicas.values() for p in ps]

    def stop(self) -> None:
        for p in reversed(self.processes()):
            p.terminate(wait=False)
        for p in reversed(self.processes()):
            p.terminate(timeout_s=20)
        for b in self.balancers.values():
            b.stop()
        self.kafka.stop()
        self.postgres.stop()

    # --- faults ---

    def kill_replica(self, process: ServiceProcess) -> None:
        process.kill()

    def restart_replica(self, process: ServiceProcess) -> None:
        process._terminated = False
        process.start()
        # Live, not ready: readiness may wait for the broker or database that another fault took down.
        process.wait_healthy("live", 120)


# --- The workload ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Ledger:
    """What the system acknowledged, and what the workload did, for the invariants."""

    accepted: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)  # (source, id) -> type
    offered: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)
    duplicates_sent: int = 0
    http_retries: int = 0
    kafka_retries: int = 0
    erased_external: set[str] = dataclasses.field(default_factory=set)
    erased_ids: set[str] = dataclasses.field(default_factory=set)
    pii: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # external id -> its personal data
    merges_undone: list[str] = dataclasses.field(default_factory=list)
    jobs_started: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    conflicts_409: int = 0
    webhook_redeliveries: int = 0
    actions: Counter = dataclasses.field(default_factory=Counter)
    faults: list[dict] = dataclasses.field(default_factory=list)
    last_fault_at: float = 0.0


class Workload:
    """Draws every event and action from one `random.Random(seed)`; sends them through both doors."""

    def __init__(self, cluster: Cluster, cfg: Config, ledger: Ledger) -> None:
        self.cluster, self.cfg, self.ledger = cluster, cfg, ledger
        self.rng = random.Random(cfg.seed)
        self.now = datetime.now(UTC)
        self.clock = self.now - timedelta(days=300)
        self.customers = [f"C{n}" for n in range(cfg.customers)]
        self.emails = {c: f"{c.lower()}.{cfg.seed}@example.com" for c in self.customers}
        # A quarter of the customers share an e-mail with another: those are merged when both sign up.
        for c in self.rng.sample(self.customers, cfg.customers // 4):
            self.emails[c] = self.emails[self.rng.choice(self.customers)]
        self.orders: dict[str, list[tuple[str, str, Decimal]]] = defaultdict(list)  # ext -> [(order, cur, amount)]
        self.adjusted: set[str] = set()
        self.held: list[dict] = []  # out-of-order: refunds sent before their order, the order follows later
        self.sent: list[dict] = []  # for duplicates
        self.partner_key = ""
        self.counter = 0

    def event(self, type_: str, subject: str, data: dict, late: bool = False) -> dict:
        self.counter += 1
        self.clock += timedelta(minutes=self.rng.randint(1, 600))
        self.clock = min(self.clock, self.now - timedelta(hours=1))
        at = self.clock - timedelta(days=self.rng.randint(1, 60)) if late else self.clock
        return {
            "specversion": "1.0",
            "id": f"e{self.cfg.seed}-{self.counter}",
            "source": SOURCE,
            "type": type_,
            "subject": subject,
            "time": at.isoformat(),
            "data": data,
        }

    def live_customers(self) -> list[str]:
        return [c for c in self.customers if c not in self.ledger.erased_external]

    def next_events(self) -> list[dict]:
        """One step of the partner stream (one or two events)."""
        rng = self.rng
        c = rng.choice(self.live_customers())
        roll = rng.random()
        late = rng.random() < 0.1
        if roll < 0.2:
            name = f"Person {c} {self.cfg.seed}"
            self.ledger.pii.setdefault(c, [])
            for value in (self.emails[c], name):
                if value not in self.ledger.pii[c]:
                    self.ledger.pii[c].append(value)
            return [
                self.event(
                    "customer.identified", c, {"identifiers": {"email": self.emails[c]}, "attributes": {"name": name}}, late
                )
            ]
        if roll < 0.6:
            order_id = f"O{self.cfg.seed}-{self.counter}"
            currency = rng.choice(CURRENCIES)
            amount = Decimal(rng.randint(500, 20000)) / 100
            self.orders[c].append((order_id, currency, amount))
            order = self.event("order.completed", c, {"order_id": order_id, "amount": str(amount), "currency": currency}, late)
            if rng.random() < 0.1:  # out of order: a refund of it first, the order a few steps later
                refund = self.event("order.refunded", c, {"order_id": order_id, "amount": str(amount / 4), "currency": currency})
                self.adjusted.add(order_id)
                self.held.append(order)
                return [refund]
            return [order]
        if roll < 0.72:
            open_orders = [o for o in self.orders[c] if o[0] not in self.adjusted]
            if open_orders:
                order_id, currency, amount = rng.choice(open_orders)
                self.adjusted.add(order_id)
                if rng.random() < 0.5:
                    return [
                        self.event(
                            "order.refunded",
                            c,
                            {"order_id": order_id, "currency": currency, "amount": str((amount / 2).quantize(Decimal("0.01")))},
                        )
                    ]
                return [self.event("order.cancelled", c, {"order_id": order_id, "reason": "changed mind"})]
        if roll < 0.82:
            return [self.event("feedback.submitted", c, {"nps": rng.randint(0, 10)}, late)]
        if roll < 0.9:
            return [
                self.event(
                    "deal.updated",
                    c,
                    {"deal_id": f"D-{c}", "stage": rng.choice(["qualified", "won"]), "amount": "100.00", "currency": "EUR"},
                )
            ]
        return [self.event("interaction.logged", c, {"channel": rng.choice(["email", "web", "phone"])}, late)]

    async def run(self, client: httpx.AsyncClient, producer_box: dict) -> None:
        offered_target = self.cfg.events
        started = time.monotonic()
        step = 0
        while self.ledger.offered < offered_target:
            step += 1
            batch: list[dict] = []
            for _ in range(self.rng.randint(1, 8)):
                batch.extend(self.next_events())
            if self.held and self.rng.random() < 0.5:
                batch.append(self.held.pop(0))
            if self.sent and self.rng.random() < 0.3:  # duplicates: the same ids again, through either door
                dups = self.rng.sample(self.sent, min(len(self.sent), self.rng.randint(1, 3)))
                batch.extend(dups)
                self.ledger.duplicates_sent += len(dups)
            self.rng.shuffle(batch)  # out of order within the batch
            if self.rng.random() < 0.5:
                await self.post(client, batch)
            else:
                await self.produce(producer_box, batch)
            self.sent.extend(batch)
            self.ledger.offered += len(batch)
            if step % 10 == 0:
                await self.admin_action(client)
            # Paced so the faults land during the traffic (`min_seconds` in all), not after it.
            behind = started + self.cfg.min_seconds * self.ledger.offered / offered_target - time.monotonic()
            await asyncio.sleep(max(0.0, behind) + self.rng.uniform(0.0, 0.05))
        for order in self.held:
            await self.post(client, [order])
        self.held.clear()

    async def post(self, client: httpx.AsyncClient, batch: list[dict]) -> None:
        """Through the gateway with the partner key; resent (same ids) until every item has an answer."""
        pending = batch
        while pending:
            try:
                resp = await client.post(
                    f"{self.cluster.gateway}/v1/events", json=pending, headers={"X-API-Key": self.partner_key}
                )
            except httpx.HTTPError:
                resp = None
            if resp is not None and resp.status_code == 200:
                results = resp.json()["results"]
                for event, result in zip(pending, results, strict=True):
                    if result["status"] in ("accepted", "duplicate"):
                        self.ledger.accepted[(event["source"], event["id"])] = event["type"]
                    else:
                        self.ledger.rejected.append(f"{event['id']} ({event['type']}): {result.get('reason')}")
                return
            self.ledger.http_retries += 1
            await asyncio.sleep(0.5)

    async def produce(self, box: dict, batch: list[dict]) -> None:
        """Through Kafka: acknowledged once the broker acked it (acks=all, idempotent producer)."""
        topic = self.cluster.prefix + PARTNER_EVENTS
        while True:
            try:
                if box.get("producer") is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self.cluster.kafka.bootstrap,
                        acks="all",
                        enable_idempotence=True,
                        request_timeout_ms=10000,
                    )
                    await producer.start()
                    box["producer"] = producer
                futures = [await box["producer"].send(topic, json.dumps(e).encode(), key=e["subject"].encode()) for e in batch]
                await asyncio.wait_for(asyncio.gather(*futures), 30)
                for e in batch:
                    self.ledger.accepted[(e["source"], e["id"])] = e["type"]
                return
            except Exception:  # noqa: BLE001 - broker down: a new producer, the same events again
                self.ledger.kafka_retries += 1
                producer, box["producer"] = box.get("producer"), None
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(producer.stop(), 10)
                await asyncio.sleep(1.0)

    async def admin(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """An operator's call through the gateway; a fault may make it fail (then it is not retried)."""
        try:
            return await client.request(method, f"{self.cluster.gateway}{path}", headers={"X-API-Key": ADMIN_KEY}, **kwargs)
        except httpx.HTTPError:
            return None

    async def customer_id(self, client: httpx.AsyncClient, external_id: str) -> str | None:
        resp = await self.admin(client, "GET", "/v1/customers", params={"source": SOURCE, "external_id": external_id})
        items = resp.json().get("items") if resp is not None and resp.status_code == 200 else None
        return items[0]["customer_id"] if items else None

    async def admin_action(self, client: httpx.AsyncClient) -> None:
        rng = self.rng
        kind = rng.choice(["move", "move", "rules", "segment", "unmerge", "unmerge", "erase", "job"])
        self.ledger.actions[kind] += 1
        c = rng.choice(self.live_customers())
        if kind == "move":
            if (cid := await self.customer_id(client, c)) is not None:
                await self.admin(
                    client,
                    "POST",
                    f"/v1/customers/{cid}/lifecycle/moves",
                    json={"to_stage": rng.choice(STAGES), "reason": "proving ground move"},
                )
        elif kind == "rules":
            params = {
                "repeat_window_days": rng.randint(60, 365),
                "loyalty_min_purchases": rng.randint(2, 4),
                "inactivity_days": rng.choice([90, 180, 365]),
            }
            resp = await self.admin(
                client, "PUT", "/v1/lifecycle/rules", json={"parameters": params, "description": "proving ground"}
            )
            if resp is not None and resp.status_code == 202:
                self.ledger.jobs_started.append(("lifecycle.replay", resp.json()["run"]["id"]))
        elif kind == "segment":
            await self.admin(
                client,
                "POST",
                "/v1/segments",
                json={
                    "key": f"pg-{self.cfg.seed}-{self.counter}",
                    "name": "proving ground",
                    "rule": {"all": [{"field": "order_count", "op": "gte", "value": rng.randint(1, 4)}]},
                },
            )
        elif kind == "unmerge":
            if (cid := await self.customer_id(client, c)) is not None:
                resp = await self.admin(client, "GET", f"/v1/customers/{cid}/merges")
                ok = resp is not None and resp.status_code == 200
                merges = [m for m in resp.json()["items"] if m["undone_at"] is None] if ok else []
                if merges:
                    undo = await self.admin(client, "POST", f"/v1/merges/{merges[0]['id']}/undo")
                    if undo is not None and undo.status_code < 300:
                        self.ledger.merges_undone.append(merges[0]["id"])
        elif kind == "erase":
            if (
                len(self.ledger.erased_external) < max(1, self.cfg.customers // 15)
                and (cid := await self.customer_id(client, c)) is not None
            ):
                resp = await self.admin(client, "POST", f"/v1/customers/{cid}/erasure")
                if resp is not None and resp.status_code < 300:
                    # Every external id whose customer was erased (a merge folds several into one).
                    erased = set(resp.json().get("erased_ids", [cid]))
                    self.ledger.erased_ids |= erased
                    for other in self.live_customers():
                        if other == c or (await self.customer_id(client, other)) in erased:
                            self.ledger.erased_external.add(other)
                    self.ledger.erased_external.add(c)
        elif kind == "job":
            currency = rng.choice(CURRENCIES)
            job = rng.choice(["fit", "scoring", "segmentation"])
            path, body = {
                "fit": ("/v1/value/models/fits", {"model": "bgnbd", "currency": currency}),
                "scoring": ("/v1/value/scorings", {"currency": currency}),
                "segmentation": ("/v1/segmentation/runs", {"kind": rng.choice(["rfm", "tiers"])}),
            }[job]
            resp = await self.admin(client, "POST", path, json=body)
            if resp is not None and resp.status_code == 202:
                body = resp.json()
                self.ledger.jobs_started.append((job, str(body.get("id") or body.get("run_id"))))
            elif resp is not None and resp.status_code == 409:
                self.ledger.conflicts_409 += 1

    async def setup_call(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """An operator's call before any fault: retried while the gateway cannot reach the service yet (on a loaded
        machine a replica may answer ready while the gateway's circuit to it is still open from start-up)."""
        deadline = time.monotonic() + 120
        while True:
            resp = await self.admin(client, method, path, **kwargs)
            if (resp is not None and resp.status_code not in (502, 503, 504)) or time.monotonic() > deadline:
                return resp
            await asyncio.sleep(1)

    async def setup(self, client: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
        # The workload links customers by shared emails: its partner is one trusted to do so.
        resp = await self.setup_call(
            client, "POST", "/v1/partners", json={"id": SOURCE, "name": SOURCE, "kind": "retailer", "trust_contact_linking": True}
        )
        # 409: a retried call whose first attempt was applied though its answer was lost.
        assert resp is not None and resp.status_code in (201, 409), resp and resp.text
        resp = await self.setup_call(
            client, "POST", "/v1/api-keys", json={"name": "proving ground partner", "role": "partner", "partner_id": SOURCE}
        )
        assert resp is not None and resp.status_code == 201, resp and resp.text
        self.partner_key = resp.json()["key"]
        resp = await self.setup_call(client, "POST", "/v1/webhooks", json={"url": receiver.url, "event_types": ["stage.changed"]})
        assert resp is not None and resp.status_code == 201, resp and resp.text


async def inject_faults(cluster: Cluster, cfg: Config, ledger: Ledger, rng: random.Random, done: asyncio.Event) -> None:
    """`cfg.faults` crashes spread over the workload: a random replica, the broker or PostgreSQL (kill -9)."""
    kinds = ["replica", "broker", "postgres", "job"]
    for n in range(cfg.faults):
        # The n-th fault once that share of the workload has been offered (faults land during the traffic).
        threshold = cfg.events * (n + 0.5 + rng.random() * 0.5) / (cfg.faults + 1)
        while ledger.offered < threshold and not done.is_set():
            await asyncio.sleep(0.2)
        if done.is_set():
            return  # the workload finished first: fewer faults than asked (reported)
        kind = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
        started = time.monotonic()
        if kind == "job":
            target = await kill_a_running_job(cluster, rng)
            print(f"  fault {n + 1}: kill -9 the replica running a job ({target})")
        elif kind == "replica":
            victim = rng.choice(cluster.processes())
            print(f"  fault {n + 1}: kill -9 {victim.name}")
            await asyncio.to_thread(cluster.kill_replica, victim)
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await asyncio.to_thread(cluster.restart_replica, victim)
            target = victim.name
        elif kind == "broker":
            print(f"  fault {n + 1}: kill -9 the Kafka broker")
            await asyncio.to_thread(cluster.kafka.kill)
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await asyncio.to_thread(cluster.kafka.start, 90)
            target = "kafka"
        else:
            print(f"  fault {n + 1}: kill -9 PostgreSQL")
            await asyncio.to_thread(cluster.postgres.kill)
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            await asyncio.to_thread(cluster.postgres.start, 90)
            target = "postgres"
        ledger.faults.append({"kind": kind, "target": target, "seconds": round(time.monotonic() - started, 1)})
        ledger.last_fault_at = time.monotonic()


JOB_STARTS = [
    ("clv.model_fit", "/v1/value/models/fits", {"model": "pareto_nbd", "currency": "EUR"}),
    ("segmentation.segmentation_run", "/v1/segmentation/runs", {"kind": "clustering"}),
    ("lifecycle.replay_run", "/v1/lifecycle/rules", None),
]


async def kill_a_running_job(cluster: Cluster, rng: random.Random) -> str:
    """Start a heavy job and kill -9 the replica that claimed it (its `claimed_by` names the pid) while it runs.

    On small data a job may finish before the kill lands: then the target says so (the fault still killed a
    replica of that service)."""
    table, path, body = rng.choice(JOB_STARTS)
    if body is None:  # a rule-set save starts a replay of every customer
        body = {"parameters": {"repeat_window_days": rng.randint(60, 365)}, "description": "proving ground"}
    async with httpx.AsyncClient(timeout=20.0, headers={"X-API-Key": ADMIN_KEY}) as client:
        method = "PUT" if table == "lifecycle.replay_run" else "POST"
        resp = await client.request(method, f"{cluster.gateway}{path}", json=body)
    created = resp.json() if resp.status_code == 202 else {}
    job_id = (created.get("run") or {}).get("id") or created.get("id") or created.get("run_id")
    service = table.split(".")[0]
    victim, state = rng.choice(cluster.replicas[service]), f"{resp.status_code}"
    conn = await asyncpg.connect(cluster.dsn())
    try:
        key = "run_id" if table == "segmentation.segmentation_run" else "id"
        deadline = time.monotonic() + 10
        while job_id is not None and time.monotonic() < deadline:
            row = await conn.fetchrow(f"select status, claimed_by from {table} where {key} = $1", uuid.UUID(job_id))
            state = row["status"] if row else "missing"
            if row and row["status"] == "running" and row["claimed_by"]:
                pid = int(row["claimed_by"].split(":")[1])
                victim = next((p for p in cluster.replicas[service] if p.proc and p.proc.pid == pid), victim)
                break
            if state not in ("queued", "running"):
                break
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    await asyncio.to_thread(cluster.kill_replica, victim)
    await asyncio.sleep(rng.uniform(1.0, 3.0))
    await asyncio.to_thread(cluster.restart_replica, victim)
    return f"{victim.name}, {table} {job_id} was {state}"


# --- Quiescence --------------------------------------------------------------------------------------------


async def consumer_lag(bootstrap: str, prefix: str) -> dict[str, int]:
    """Lag per consumer group of this run (committed offset vs end of each partition)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        lags: dict[str, int] = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            topics = {tp.topic for tp in committed}
            parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or [])]
            if not parts:
                for t in topics:
                    await consumer._client.force_metadata_update()  # metadata for the topics
                    parts += [TopicPartition(t, p) for p in (consumer.partitions_for_topic(t) or [])]
            ends = await consumer.end_offsets(parts) if parts else {}
            lags[group] = sum(
                max(0, end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
                for tp, end in ends.items()
            )
        return lags
    finally:
        await consumer.stop()
        await admin.close()


async def published(bootstrap: str, topic: str) -> list[dict]:
    """Every event on `topic` now, each partition in order, a re-sent one at its first place only: what the owner
    published (its relay deletes the outbox rows Kafka has; a relay killed between Kafka's ack and that delete
    sends the rows again, under the same event ids)."""
    events: dict[str, dict] = {}
    for record in await read_all(bootstrap, topic, timeout=60):
        event = json.loads(record.value)
        events.setdefault(event["id"], event)
    return list(events.values())


async def busy(cluster: Cluster) -> tuple[list[str], datetime]:
    """What still moves: unsent outbox rows, unfinished jobs, pending webhook deliveries, consumer lag; and the
    database's time of the look."""
    out = []
    conn = await asyncpg.connect(cluster.dsn())
    try:
        looked_at = await conn.fetchval("select now()")
        for schema in SCHEMAS:
            n = await conn.fetchval(f"select count(*) from {schema}.outbox where sent_at is null")
            if n:
                out.append(f"{schema}.outbox: {n} unsent")
        for table in JOB_TABLES:
            rows = await conn.fetch(f"select status, count(*) from {table} where status in ('queued', 'running') group by status")
            out += [f"{table}: {r['count']} {r['status']}" for r in rows]
        n = await conn.fetchval("select count(*) from gateway.webhook_delivery where status = 'pending'")
        if n:
            out.append(f"gateway.webhook_delivery: {n} pending")
    finally:
        await conn.close()
    lags = await consumer_lag(cluster.kafka.bootstrap, cluster.prefix)
    out += [f"consumer group {g}: lag {n}" for g, n in sorted(lags.items()) if n]
    return out, looked_at


async def quiesce(cluster: Cluster, timeout_s: float) -> tuple[float, list[str], datetime | None]:
    """Seconds until nothing moved twice in a row (2 s apart), and the database's time of the last look; on
    timeout, what still moved."""
    started = time.monotonic()
    quiet_in_a_row = 0
    last: list[str] = ["not checked"]
    looked_at: datetime | None = None
    while time.monotonic() - started < timeout_s:
        try:
            last, looked_at = await busy(cluster)
        except Exception as exc:  # noqa: BLE001 - a server still recovering counts as busy
            last = [f"check failed: {type(exc).__name__}: {exc}"]
        quiet_in_a_row = quiet_in_a_row + 1 if not last else 0
        if quiet_in_a_row >= 2:
            return time.monotonic() - started, [], looked_at
        await asyncio.sleep(2.0)
    return time.monotonic() - started, last, None


# --- Invariants --------------------------------------------------------------------------------------------


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


class Checker:
    """Each invariant returns its divergences, one line each."""

    def __init__(self, cluster: Cluster, ledger: Ledger, receiver: WebhookReceiver) -> None:
        self.cluster, self.ledger, self.receiver = cluster, ledger, receiver
        self.results: dict[str, list[str]] = {}

    async def run(self, still_busy: list[str], quiet_at: datetime | None) -> dict[str, list[str]]:
        self.quiet_at = quiet_at
        self.results["quiescence"] = still_busy
        self.results["valid_events_accepted"] = list(self.ledger.rejected)
        async with httpx.AsyncClient(timeout=30.0) as client:
            self.client = client
            self.conn = await asyncpg.connect(self.cluster.dsn())
            try:
                self.ids = await self.all_customer_ids()
                # clv's profitability is a second copy of the purchases in clv (its own consumer), not in the view.
                self.reads = {
                    cid: await self.read_all(cid)
                    | {"profitability": await self.get("clv", f"/v1/value/profitability/customers/{cid}")}
                    for cid in self.ids
                }
                for name, check in [
                    ("jobs_finished", self.jobs_finished),
                    ("copies_equal_owner", self.copies_equal_owner),
                    ("stage_copies", self.stage_copies),
                    ("membership_copies", self.membership_copies),
                    ("applied_exactly_once", self.applied_exactly_once),
                    ("composed_view", self.composed_view),
                    ("erased_no_pii", self.erased_no_pii),
                    ("webhooks_once_in_order", self.webhooks_once_in_order),
                ]:
                    try:
                        self.results[name] = await check()
                    except Exception as exc:  # noqa: BLE001 - a check that crashes is a divergence, listed
                        self.results[name] = [f"check crashed: {type(exc).__name__}: {exc}"]
            finally:
                await self.conn.close()
        return self.results

    async def all_customer_ids(self) -> list[str]:
        """Every internal id interaction ever gave out (merged-away ones too: their copies must follow)."""
        rows = await self.conn.fetch("select id from interaction.customer order by id")
        return [str(r["id"]) for r in rows]

    async def get(self, service: str, path: str) -> tuple[int, Any]:
        # A service's own read, as the gateway would make it for an admin (services answer only its tokens).
        resp = await self.client.get(
            f"{self.cluster.url(service)}{path}", headers={"X-Internal-Token": harness.internal_token(service, 60.0)}
        )
        return resp.status_code, resp.json() if resp.headers.get("content-type", "").startswith(
            ("application/json", "application/problem+json")
        ) else resp.text

    async def read_all(self, cid: str, as_survivor: bool = False) -> dict[str, tuple[int, Any]]:
        """Each service's own read of `cid`; with `as_survivor`, the parts after the profile are read for the
        customer the profile resolved `cid` to (as the composed view asks them)."""
        profile = await self.get("interaction", f"/v1/customers/{cid}")
        part_id = profile[1]["customer_id"] if as_survivor and profile[0] == 200 else cid
        return {
            "profile": profile,
            "segmentation": await self.get("segmentation", f"/v1/customers/{part_id}/segmentation"),
            "value": await self.get("clv", f"/v1/customers/{part_id}/value"),
            "lifecycle": await self.get("lifecycle", f"/v1/customers/{part_id}/lifecycle"),
        }

    async def jobs_finished(self) -> list[str]:
        # Jobs made after quiescence are new work, not unfinished work: segmentation's schedule (every 20 s here)
        # may start a run between the last quiet look and this check.
        out = []
        for table in JOB_TABLES:
            unfinished = (
                f"select * from {table} where status in ('queued', 'running') and ($1::timestamptz is null or created_at <= $1)"
            )
            for r in await self.conn.fetch(unfinished, self.quiet_at):
                key = r.get("id") or r.get("run_id")
                out.append(f"{table} {key} still {r['status']} after quiescence")
        return out

    async def copies_equal_owner(self) -> list[str]:
        """Per customer: survivor, erased, order count and net spend per currency, owner vs each copy."""
        out = []
        for cid in self.ids:
            reads = self.reads[cid]
            status, profile = reads["profile"]
            if status == 404 or (status == 200 and profile.get("erased_at")):
                erased = True
            elif status != 200:
                out.append(f"{cid}: interaction answered {status}")
                continue
            else:
                erased = False
            if erased:
                for part in ("segmentation", "value", "lifecycle", "profitability"):
                    s, body = reads[part]
                    if s == 200 and self.has_facts(part, body):
                        out.append(f"{cid} (erased in interaction): {part} still holds facts {self.facts(part, body)}")
                continue
            survivor = profile["customer_id"]
            owner = {
                t["currency"]: (t["purchase_count"], money(t["total_spend"]))
                for t in profile["purchase_totals"]
                if t["purchase_count"] or money(t["total_spend"])
            }
            for part in ("segmentation", "value", "lifecycle", "profitability"):
                s, body = reads[part]
                if s == 404:
                    if owner and survivor != cid:
                        out.append(
                            f"{cid}: merged into {survivor} in interaction; {part} does not resolve the merged-away id (404)"
                        )
                    elif owner:
                        out.append(f"{cid}: {part} does not know the customer; interaction: {owner}")
                    continue
                if s != 200:
                    out.append(f"{cid}: {part} answered {s}")
                    continue
                if body.get("customer_id") != survivor:
                    out.append(f"{cid}: survivor in interaction {survivor}, in {part} {body.get('customer_id')}")
                copy = self.facts(part, body)
                want = owner
                if part == "lifecycle":
                    want = self.lifecycle_view(owner)
                    if want["spend"] is None:
                        copy["spend"] = None
                if copy != want:
                    out.append(f"{cid}: order count/net spend in interaction {want}, in {part} {copy}")
        return out

    @staticmethod
    def lifecycle_view(owner: dict) -> dict:
        """Lifecycle keeps one order count and one spend (money of one currency is never summed: compared only
        for single-currency customers)."""
        count = sum(n for n, _ in owner.values())
        spend = next(iter(owner.values()))[1] if len(owner) == 1 else Decimal("0.00") if not owner else None
        return {"orders": count, "spend": spend}

    @staticmethod
    def facts(part: str, body: dict) -> dict:
        if part == "segmentation":
            return {
                c["currency"]: (c["order_count"], money(c["total_spend"]))
                for c in body.get("by_currency", [])
                if c["order_count"] or money(c["total_spend"])
            }
        if part == "value":
            return {
                c["currency"]: (c["purchase_count"], money(Decimal(c["gross_revenue"]) - Decimal(c["refunded"])))
                for c in body.get("by_currency", [])
                if c["purchase_count"] or money(c["gross_revenue"])
            }
        if part == "profitability":
            return {
                c["currency"]: (c["orders"], money(c["net_revenue"]))
                for c in body.get("by_currency", [])
                if c["orders"] or money(c["net_revenue"])
            }
        return {
            "orders": body.get("order_count"),
            "spend": money(body["total_spend"]) if body.get("total_spend") is not None else None,
        }

    def has_facts(self, part: str, body: dict) -> bool:
        if part == "lifecycle":
            return bool(body.get("order_count"))
        return bool(self.facts(part, body))

    async def stage_copies(self) -> list[str]:
        """Lifecycle's stage vs segmentation's copy (its API) and clv's copy (its table: it has no read of it)."""
        out = []
        clv_stage = {
            str(r["customer_id"]): r["stage"] for r in await self.conn.fetch("select customer_id, stage from clv.customer_stage")
        }
        clv_erased = {str(r["customer_id"]) for r in await self.conn.fetch("select customer_id from clv.erased_customer")}
        for cid in self.ids:
            s, life = self.reads[cid]["lifecycle"]
            if s != 200 or life.get("customer_id") != cid:
                continue  # unknown to lifecycle, or merged away (its survivor is checked on its own)
            stage = life["stage"]
            s, seg = self.reads[cid]["segmentation"]
            if s == 200 and seg.get("customer_id") == cid and seg.get("stage") != stage:
                out.append(f"{cid}: stage in lifecycle {stage}, in segmentation {seg.get('stage')}")
            if clv_stage.get(cid) != stage:
                erased = [
                    where
                    for where, yes in (
                        (
                            "interaction",
                            self.reads[cid]["profile"][0] == 404 or bool(self.reads[cid]["profile"][1].get("erased_at")),
                        ),
                        ("clv", cid in clv_erased),
                    )
                    if yes
                ]
                note = f" (erased in {', '.join(erased)})" if erased else ""
                out.append(f"{cid}: stage in lifecycle {stage}, in clv {clv_stage.get(cid)}{note}")
        return out

    async def membership_copies(self) -> list[str]:
        """Segmentation's open memberships vs interaction's and clv's copies (their rows marked member), for every
        customer not erased (segmentation and clv delete an erased customer's; interaction's copy keeps anonymous
        rows). Copies follow by design, and segmentation's schedule may start a run after quiescence: compared
        again every 2 s until equal, for at most 60 s; what still differs then is a divergence."""
        deadline = time.monotonic() + 60
        while True:
            out = await self._membership_divergences()
            if not out or time.monotonic() > deadline:
                return out
            await asyncio.sleep(2)

    async def _membership_divergences(self) -> list[str]:
        erased = {r["id"] for r in await self.conn.fetch("select id from interaction.customer where erased_at is not null")} | {
            r["customer_id"] for r in await self.conn.fetch("select customer_id from clv.erased_customer")
        }
        owner_sql = (
            "select m.customer_id, s.key from segmentation.segment_membership m "
            "join segmentation.segment s on s.segment_id = m.segment_id where m.left_at is null"
        )
        owner = {(r[0], r[1]) for r in await self.conn.fetch(owner_sql) if r[0] not in erased}
        out = []
        for copy in ("interaction", "clv"):
            rows = await self.conn.fetch(f"select customer_id, segment_key from {copy}.segment_membership where member")
            held = {(r[0], r[1]) for r in rows if r[0] not in erased}
            out += [f"{cid}: member of {key} in segmentation, not in {copy}'s copy" for cid, key in sorted(owner - held)]
            out += [f"{cid}: member of {key} in {copy}'s copy, not in segmentation" for cid, key in sorted(held - owner)]
        return out

    async def applied_exactly_once(self) -> list[str]:
        """Every acknowledged event claimed once in interaction's inbox and on the timeline once (unless erased)."""
        out = []
        claimed = {
            (r["source"], r["event_id"])
            for r in await self.conn.fetch("select source, event_id from interaction.inbox where consumer = $1", INGEST_INBOX)
        }
        timeline = Counter(
            (r["source"], r["event_id"])
            for r in await self.conn.fetch(
                "select a.source, a.event_id from interaction.activity a join interaction.customer c "
                "on c.id = a.customer_id where c.erased_at is null"
            )
        )
        for key, type_ in sorted(self.ledger.accepted.items()):
            if key not in claimed:
                out.append(f"{key[0]}/{key[1]} ({type_}): acknowledged but never applied")
            if timeline.get(key, 0) > 1:
                out.append(f"{key[0]}/{key[1]} ({type_}): {timeline[key]} timeline entries")
        unknown = claimed - set(self.ledger.accepted)
        out += [f"{s}/{e}: applied but never acknowledged to the sender" for s, e in sorted(unknown) if s == SOURCE]
        return out

    async def composed_view(self) -> list[str]:
        """The gateway's composed view: each part equal to the owning service's own read."""
        out = []
        for cid in self.ids:
            # Scheduled runs (rfm every few seconds here) may change a read between two calls: the view is
            # compared with own reads taken just before and just after it that agree with each other.
            for _ in range(3):
                before = await self.read_all(cid, as_survivor=True)
                resp = await self.client.get(f"{self.cluster.gateway}/v1/customers/{cid}", headers={"X-API-Key": ADMIN_KEY})
                own = await self.read_all(cid, as_survivor=True)
                if own == before:
                    break
            if resp.status_code != 200:
                if own["profile"][0] == 200:
                    out.append(f"{cid}: composed view answered {resp.status_code}, interaction 200")
                continue
            view = resp.json()
            if view.get("unavailable"):
                out.append(f"{cid}: composed view missing {view['unavailable']}")
            for part in ("profile", "segmentation", "value", "lifecycle"):
                s, body = own[part]
                expected = body if s == 200 else None
                if view.get(part) != expected:
                    out.append(
                        f"{cid}: composed view's {part} differs from the service's own read ({_diff(view.get(part), expected)})"
                    )
        return out

    async def erased_no_pii(self) -> list[str]:
        """No personal data of erased customers in any column of any table of any schema."""
        # A shared e-mail stays with a live customer it also belongs to (two partner ids unmerged): not a leak.
        live_values = {v for ext, vs in self.ledger.pii.items() if ext not in self.ledger.erased_external for v in vs}
        values = sorted({v for ext in self.ledger.erased_external for v in self.ledger.pii.get(ext, [])} - live_values)
        out = await scan_pii(self.conn, SCHEMAS, values) if values else []
        # The scan checks itself: a live customer's e-mail must be found (else it would pass by finding nothing).
        live = [
            v
            for ext, vs in self.ledger.pii.items()
            if ext not in self.ledger.erased_external
            for v in vs
            if "@" in v and v not in values
        ]
        if live and not await scan_pii(self.conn, ["interaction"], live[:1]):
            out.append(f"the scan does not find a live customer's e-mail {live[0]!r}: it is broken")
        return out

    async def webhooks_once_in_order(self) -> list[str]:
        """The webhook log (the gateway's deliveries) holds each stage.changed lifecycle made once, delivered; the
        receiver got each, first arrivals per customer in the order lifecycle made them.

        A receiver may get an event again (at-least-once: the gateway lost the outcome of a post, e.g. its
        database was killed meanwhile; the event id is the same, receivers deduplicate): counted in
        `webhook_redeliveries`, not a divergence."""
        out = []
        received = [e for e in self.receiver.received if e.get("type") == "stage.changed"]
        counts = Counter(e["id"] for e in received)
        self.ledger.webhook_redeliveries = sum(n - 1 for n in counts.values())
        print(f"  webhooks: {len(received)} stage.changed received, {len(counts)} distinct")
        # Per customer, in the order lifecycle made them: a customer's events share its partition, in outbox order.
        made: dict[str, list[str]] = defaultdict(list)
        for event in await published(self.cluster.kafka.bootstrap, self.cluster.prefix + LIFECYCLE_EVENTS):
            if event.get("type") == "stage.changed":
                made[event["data"]["customer_id"]].append(event["id"])
        log = Counter(
            r["event_id"]
            for r in await self.conn.fetch("select event_id from gateway.webhook_delivery where event_type = 'stage.changed'")
        )
        status = {
            r["event_id"]: r["status"]
            for r in await self.conn.fetch(
                "select event_id, status from gateway.webhook_delivery where event_type = 'stage.changed'"
            )
        }
        erased = self.ledger.erased_ids
        for cid, ids in made.items():
            if cid in erased:
                continue  # an erased customer's finished deliveries are dropped from the log
            for event_id in ids:
                if log[event_id] != 1:
                    out.append(f"{cid}: stage.changed {event_id} is {log[event_id]} times in the webhook log")
                elif status[event_id] != "delivered":
                    out.append(f"{cid}: stage.changed {event_id} is {status[event_id]}")
                elif event_id not in counts:
                    out.append(f"{cid}: stage.changed {event_id} marked delivered but never received")
        arrived: dict[str, list[str]] = defaultdict(list)
        for e in received:
            if e["id"] not in arrived[e["data"]["customer_id"]]:
                arrived[e["data"]["customer_id"]].append(e["id"])
        for cid, ids in arrived.items():
            if cid in erased:
                continue  # erased: its finished deliveries are dropped from the log, as above
            expected = [i for i in made.get(cid, []) if i in set(ids)]
            if ids != expected:
                out.append(f"{cid}: stage.changed arrived in the order {ids}, lifecycle made them as {expected}")
        return out


async def scan_pii(conn: asyncpg.Connection, schemas: list[str], values: list[str]) -> list[str]:
    """Every text, json and bytea column of every table in `schemas` searched for each value (case-insensitive).

    Minimal on purpose: `tests/pii_scan.py` (the erasure work) is the reference scan; this one keeps the bench
    free of the tests package's internals.
    """
    columns = await conn.fetch(
        """
        select c.table_schema, c.table_name, c.column_name, c.data_type from information_schema.columns c
        join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
        where c.table_schema = any($1::text[]) and t.table_type = 'BASE TABLE'
          and c.data_type in ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY')
        order by 1, 2, 3""",
        schemas,
    )
    out = []
    for col in columns:
        expr = (
            f"convert_from({_q(col['column_name'])}, 'UTF8')"
            if col["data_type"] == "bytea"
            else f"{_q(col['column_name'])}::text"
        )
        table = f"{_q(col['table_schema'])}.{_q(col['table_name'])}"
        for value in values:
            try:
                n = await conn.fetchval(f"select count(*) from {table} where position(lower($1) in lower({expr})) > 0", value)
            except asyncpg.PostgresError:  # bytes that are not UTF-8: searched as escaped text instead
                n = await conn.fetchval(
                    f"select count(*) from {table} where position($1 in encode({_q(col['column_name'])}, 'escape')) > 0", value
                )
            if n:
                out.append(
                    f"{col['table_schema']}.{col['table_name']}.{col['column_name']}: {n} row(s) hold "
                    f"personal data of an erased customer ({value!r})"
                )
    return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _diff(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}"[:200] for k in keys[:5])
    return f"{str(a)[:150]} vs {str(b)[:150]}"


# --- The run -----------------------------------------------------------------------------------------------


async def drive(cluster: Cluster, cfg: Config) -> dict:
    # The harness's own producer retries through the broker kills: its connection errors are expected.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    ledger = Ledger()
    receiver = WebhookReceiver().start()
    workload = Workload(cluster, cfg, ledger)
    producer_box: dict = {}
    try:
        async with httpx.AsyncClient(timeout=20.0) as client:
            await workload.setup(client, receiver)
            done = asyncio.Event()
            faults = asyncio.create_task(inject_faults(cluster, cfg, ledger, random.Random(cfg.seed + 1), done))
            load_started = time.monotonic()
            try:
                await workload.run(client, producer_box)
            finally:
                done.set()
                await faults
            load_s = time.monotonic() - load_started
            memory = cluster.footprint_mb()
            print(f"resident memory at the end of the load (MiB): {memory}")
            print(
                f"workload done: {ledger.offered} events offered ({ledger.duplicates_sent} duplicates), "
                f"{len(ledger.accepted)} distinct acknowledged, {len(ledger.faults)} faults, actions "
                f"{dict(ledger.actions)}, in {load_s:.0f} s"
            )
            # Everything restarted must be up before quiescence means anything.
            for p in cluster.processes():
                await asyncio.to_thread(p.wait_healthy, "ready", 120)
        since = ledger.last_fault_at or time.monotonic()
        settled_s, still_busy, quiet_at = await quiesce(cluster, cfg.quiescence_timeout_s)
        await asyncio.sleep(2.0)  # a short settle: webhook posts in flight land
        quiescence_s = time.monotonic() - since
        print(
            f"quiescence {'reached' if not still_busy else 'NOT reached'} {quiescence_s:.1f} s after the last "
            f"fault (waited {settled_s:.1f} s after the workload)"
        )
        results = await Checker(cluster, ledger, receiver).run(still_busy, quiet_at)
    finally:
        receiver.stop()
        if producer_box.get("producer") is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer_box["producer"].stop(), 10)
    return {"ledger": ledger, "results": results, "quiescence_s": quiescence_s, "load_s": load_s, "memory": memory}


def report(cfg: Config, outcome: dict) -> dict:
    results: dict[str, list[str]] = outcome["results"]
    ledger: Ledger = outcome["ledger"]
    print(f"invariants (seed {cfg.seed}; replay with PROVING_GROUND_SEED={cfg.seed}):")
    for name, divergences in results.items():
        print(f"  {'ok  ' if not divergences else 'FAIL'} {name}: {len(divergences)} divergence(s)")
        for line in divergences[:50]:
            print(f"       - {line}")
        if len(divergences) > 50:
            print(f"       … and {len(divergences) - 50} more")
    return {
        "benchmark": "proving_ground",
        "seed": cfg.seed,
        "events": ledger.offered,
        "events_acknowledged": len(ledger.accepted),
        "faults": len(ledger.faults),
        "fault_list": ledger.faults,
        "invariants_checked": len(results),
        "divergences": sum(len(d) for d in results.values()),
        "divergences_by_invariant": {k: len(v) for k, v in results.items()},
        "quiescence_seconds": round(outcome["quiescence_s"], 1),
        "load_seconds": round(outcome["load_s"], 1),
        "resident_mb": outcome["memory"],
        "http_retries": ledger.http_retries,
        "kafka_retries": ledger.kafka_retries,
        "conflicts_409": ledger.conflicts_409,
        "webhook_redeliveries": ledger.webhook_redeliveries,
    }


@contextlib.contextmanager
def cluster_for(cfg: Config) -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="crm-proving-ground-") as tmp:
        cluster = Cluster(cfg, Path(tmp))
        try:
            cluster.start()
            yield cluster
        except BaseException:
            for p in cluster.processes():
                if p.proc is not None and p.proc.poll() is not None and p.proc.returncode not in (0, -9, -15):
                    print(f"--- {p.name} exited {p.proc.returncode}:\n{log_tail(p.log_path)}")
            raise
        finally:
            cluster.stop()


def run(cfg: Config) -> tuple[dict, dict[str, list[str]]]:
    """The whole proving ground; returns (figures, divergences by invariant)."""
    print(
        f"proving ground: seed {cfg.seed} (set PROVING_GROUND_SEED={cfg.seed} to replay), {cfg.events} events, "
        f"{cfg.faults} faults, {cfg.replicas} replicas per service, {cfg.partitions} partitions per topic"
    )
    with cluster_for(cfg) as cluster:
        outcome = asyncio.run(drive(cluster, cfg))
    return report(cfg, outcome), outcome["results"]


def seed_from_env() -> int:
    value = os.environ.get("PROVING_GROUND_SEED")
    return int(value) if value else random.SystemRandom().randrange(1, 2**31)


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench proving_ground", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="workload seed (default: PROVING_GROUND_SEED or random)")
    parser.add_argument("--events", type=int, default=3000, help="partner events offered")
    parser.add_argument("--faults", type=int, default=6, help="crashes injected")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args(argv)
    cfg = Config(
        seed=args.seed if args.seed is not None else seed_from_env(),
        events=args.events,
        faults=args.faults,
        customers=args.customers,
        replicas=args.replicas,
        partitions=args.partitions,
    )
    figures, _ = run(cfg)
    return figures
