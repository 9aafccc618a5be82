"""A real single-node Apache Kafka broker (KRaft) for tests, benchmarks and the embedded dev mode.

There is no Docker engine on the development and CI machines, so the broker runs straight from
the Maven Central jars resolved by ``kafka-pom.xml`` (cached under ``cache_dir()``). Nothing is
mocked: producers and consumers talk to the same broker code that runs in production, so
idempotence, offsets and crash recovery (``kill()`` + ``restart()``) behave for real.

Two client listeners, as in docker-compose.yml: PLAINTEXT for the platform's own services (bound to
127.0.0.1; its anonymous principal is a super user) and PARTNER, SASL_PLAINTEXT with SCRAM-SHA-512, where
partners authenticate and the StandardAuthorizer enforces the ACLs ``add_partner`` grants
(docs/security.md, class 3).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import fasteners
import psutil
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local.ports import free_port

logger = logging.getLogger(__name__)

POM = Path(__file__).with_name("kafka-pom.xml")
KAFKA_VERSION: str = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text()).group(1)  # type: ignore[union-attr]
_TOPIC_ALREADY_EXISTS = 36
_T = TypeVar("_T")

_LOG4J2 = """\
status = warn
name = crm-local-kafka
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""
# Per-request, per-partition and client-side chatter: WARN keeps the broker log readable.
_QUIET = (
    "kafka.request.logger",
    "state.change.logger",
    "kafka.log.LogCleaner",
    "kafka.cluster",
    "org.apache.kafka.storage",
    "org.apache.kafka.clients",
    "org.apache.kafka.common",
)


def cache_dir() -> Path:
    return Path(os.environ.get("CRM_CACHE_DIR", "~/.cache/customer-value-crm")).expanduser()


def ensure_jars() -> Path:
    """Resolve the broker jars with Maven once (per pom content) and return the ``lib`` directory."""
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"`{tool}` is not on PATH; it is needed to run the local Kafka {KAFKA_VERSION} broker")
    home = cache_dir() / f"kafka-{KAFKA_VERSION}"
    lib, marker = home / "lib", home / "complete"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    home.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(home / ".lock")):
        if marker.exists() and marker.read_text() == digest and lib.is_dir():
            return lib
        partial = home / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        logger.info("resolving Kafka %s jars into %s", KAFKA_VERSION, lib)
        cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"Maven timed out resolving Kafka jars: {' '.join(cmd)}") from exc
        if res.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
            raise RuntimeError(
                f"Maven failed to resolve Kafka jars (exit {res.returncode}): {' '.join(cmd)}\n"
                f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
            )
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        marker.write_text(digest)
        return lib


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a private event loop in a worker thread, so callers may already be inside one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"<{path} does not exist>"
    return f"--- tail of {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def acreate_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    """Create topics (replication factor 1), ignoring those that already exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()
    failed = [(t, code, msg) for t, code, msg in resp.topic_errors if code not in (0, _TOPIC_ALREADY_EXISTS)]
    if failed:
        raise RuntimeError(f"creating topics on {bootstrap} failed: {failed}")


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    _run_sync(acreate_topics(bootstrap, list(names), partitions))


# Partners authenticate with SCRAM on the PARTNER listener; ACLs decide what each may do. The services' listener
# and the controller's are anonymous and trusted (super user), so they must be reachable only by the platform.
# docker-compose.yml sets the same (tests/e2e/test_compose.py compares them).
PARTNER_SECURITY = {
    "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "listener.name.partner.sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "listener.name.partner.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
    "allow.everyone.if.no.acl.found": "false",
}
ADMIN_TOOL = Path(__file__).with_name("KafkaPartnerAdmin.java")


def add_partner(bootstrap: str, partner: str, password: str, topic_prefix: str = "") -> None:
    """Onboard a partner on the Kafka door: SCRAM credential, its topic and DLQ, its ACLs (KafkaPartnerAdmin.java).

    `bootstrap` is the services' (super user) listener. Kafka's Java Admin client does it: aiokafka's admin
    client has neither SCRAM credentials nor ACLs.
    """
    res = subprocess.run(
        [
            "java",
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            f"{ensure_jars()}/*",
            str(ADMIN_TOOL),
            bootstrap,
            topic_prefix,
            partner,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PARTNER_PASSWORD": password},
    )
    if res.returncode != 0:
        raise RuntimeError(f"onboarding partner {partner!r} on {bootstrap} failed:\n{res.stdout}\n{res.stderr[-4000:]}")


async def _broker_count(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        return len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


class KafkaBroker:
    """One KRaft node (broker + controller) whose ports, logs and data all live in ``data_dir``.

    Ports are persisted in ``data_dir/ports.json`` and the pid in ``data_dir/broker.pid``, so a later
    process (e.g. ``python -m deploy.local up``) adopts a running broker instead of starting another.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        partner_port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.heap = heap
        self._ports_file = self.data_dir / "ports.json"
        self._pid_file = self.data_dir / "broker.pid"
        saved = json.loads(self._ports_file.read_text()) if self._ports_file.exists() else {}
        self.port: int = port or saved.get("port") or free_port()
        self.controller_port: int = controller_port or saved.get("controller_port") or free_port()
        self.partner_port: int = partner_port or saved.get("partner_port") or free_port()
        self.log_file = self.data_dir / "server.log"
        self.stdout_file = self.data_dir / "stdout.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def partner_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (SCRAM-SHA-512) listener partners use."""
        return f"127.0.0.1:{self.partner_port}"

    def add_partner(self, partner: str, password: str, topic_prefix: str = "") -> None:
        add_partner(self.bootstrap, partner, password, topic_prefix)

    @property
    def pid(self) -> int | None:
        """Pid of the last broker started on this data dir (by any process); it may have died since."""
        return int(self._pid_file.read_text()) if self._pid_file.exists() else None

    def _process(self) -> psutil.Process | None:
        """The live broker process for this data dir (guards against pid reuse), else None."""
        pid = self.pid
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            if str(self.data_dir / "server.properties") in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.Error:
            pass
        return None

    def is_running(self) -> bool:
        return self._process() is not None

    def _java(self, *args: str, heap: str) -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{ensure_jars()}/*",
            *args,
        ]

    def _write_config(self) -> Path:
        log_dirs = self.data_dir / "kraft-logs"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},"
            f"PARTNER://127.0.0.1:{self.partner_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},PARTNER://127.0.0.1:{self.partner_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PARTNER:SASL_PLAINTEXT",
            **PARTNER_SECURITY,
            "log.dirs": str(log_dirs),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Events carry personal data until their topic deletes them: 7 days, as in docker-compose.yml
            # (docs/interaction.md, "Erasure and retention").
            "log.retention.hours": "168",
            # Offset commits wait this long for company before being written (default 5 ms): tests commit often.
            "group.coordinator.append.linger.ms": "1",
            # Sized for a 2-core machine and a 512m heap (the cleaner buffer defaults to 128 MiB).
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": "16777216",
            # After kill -9 the restarted controller keeps the old broker registration until its session
            # expires (default 9 s); a shorter session makes crash-restart tests ~5 s faster.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
        }
        conf = self.data_dir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = _LOG4J2.format(log_file=self.log_file) + "".join(
            f"logger.q{i}.name = {name}\nlogger.q{i}.level = WARN\n" for i, name in enumerate(_QUIET)
        )
        (self.data_dir / "log4j2.properties").write_text(log4j)
        self._ports_file.write_text(
            json.dumps({"port": self.port, "controller_port": self.controller_port, "partner_port": self.partner_port})
        )
        if not (log_dirs / "meta.properties").exists():
            self._format(conf)
        return conf

    def _format(self, conf: Path) -> None:
        def tool(*args: str) -> str:
            res = subprocess.run(
                self._java("kafka.tools.StorageTool", *args, heap="256m"), capture_output=True, text=True, timeout=120
            )
            if res.returncode != 0:
                raise RuntimeError(f"kafka StorageTool {args[0]} failed:\n{res.stdout}\n{res.stderr}\n{_tail(self.log_file)}")
            return res.stdout.strip()

        cluster_id = tool("random-uuid").splitlines()[-1]
        logger.info("formatting KRaft storage in %s (cluster id %s)", self.data_dir, cluster_id)
        tool("format", "-t", cluster_id, "-c", str(conf))

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            return _run_sync(_broker_count(self.bootstrap)) > 0
        except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
            return False

    def start(self, timeout: float = 60) -> None:
        """Start (formatting storage the first time) and wait until the broker serves metadata."""
        if self.is_running():
            logger.info("reusing Kafka broker pid %s on %s", self.pid, self.bootstrap)
            self._wait_ready(timeout)
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        with open(self.stdout_file, "ab") as out:
            proc = subprocess.Popen(
                self._java("kafka.Kafka", str(conf), heap=self.heap),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid_file.write_text(str(proc.pid))
        logger.info("started Kafka %s pid %s on %s (data %s)", KAFKA_VERSION, proc.pid, self.bootstrap, self.data_dir)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.is_running():
                raise RuntimeError(f"Kafka broker in {self.data_dir} exited during start-up\n{self._diagnostics()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka broker on {self.bootstrap} not ready after {timeout}s\n{self._diagnostics()}")
            time.sleep(0.5)

    def _diagnostics(self) -> str:
        """The first ERROR in the broker log (the cause; the tail is mostly shutdown noise) plus both tails."""
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        first = next((i for i, line in enumerate(lines) if "] ERROR " in line), None)
        cause = "\n".join(lines[first : first + 8]) if first is not None else "<no ERROR in broker log>"
        return f"--- first error ---\n{cause}\n{_tail(self.stdout_file)}\n{_tail(self.log_file, 25)}"

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        proc = self._process()
        if proc is None:
            return True
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            return False
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        return True

    def kill(self) -> None:
        """SIGKILL the broker's process group (simulates a crash; data written so far stays on disk)."""
        self._signal_and_wait(signal.SIGKILL, 30)

    def stop(self) -> None:
        """Graceful shutdown: SIGTERM, then SIGKILL after 20 s."""
        if not self._signal_and_wait(signal.SIGTERM, 20):
            logger.warning("Kafka broker pid %s ignored SIGTERM for 20s; killing it", self.pid)
            self.kill()
        self._pid_file.unlink(missing_ok=True)

    def restart(self, timeout: float = 60) -> None:
        """Stop if running, then start on the same data dir and ports (never reformats)."""
        self.stop()
        self.start(timeout)
