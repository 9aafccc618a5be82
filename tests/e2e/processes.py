"""Services as real OS processes: what `docker compose up` runs, minus the containers.

Each process logs to a file; a process that does not get healthy fails the test with the tail of its log,
so a broken startup reads as its own traceback rather than as a timeout.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from shared.db import asyncpg_dsn

REPO = Path(__file__).resolve().parents[2]


def serve_argv(name: str, port: int) -> list[str]:
    return [sys.executable, "-m", name, "serve", "--host", "127.0.0.1", "--port", str(port)]


def process_env(settings: dict[str, str]) -> dict[str, str]:
    """Like a container's: the given settings and what any process needs, none of the test's own variables.

    The gateway keypair the session uses (tests/conftest.py) goes to every process, as a deployment's
    environment would hold it (the services' settings read only the public key).
    """
    base = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "TMPDIR", "INTERNAL_TOKEN_PRIVATE_KEY", "INTERNAL_TOKEN_PUBLIC_KEY")
    }
    return {**base, "PYTHONUNBUFFERED": "1", **settings}


def log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


class ServiceProcess:
    """One service's OS process, its port and its log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], port: int, log_dir: Path) -> None:
        self.name, self.argv, self.env, self.port = name, list(argv), env, port
        self.log_path = log_dir / f"{name}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self._terminated = False

    def start(self) -> "ServiceProcess":
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, probe: str = "ready", timeout_s: float = 60.0) -> None:
        """Polls `/health/<probe>` until 200; raises with the log's tail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise AssertionError(f"{self.name} exited ({code}) before it was {probe}:\n{log_tail(self.log_path)}")
            try:
                resp = httpx.get(f"{self.url}/health/{probe}", timeout=2.0)
                if resp.status_code == 200:
                    return
                last = f"{resp.status_code} {resp.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not {probe} after {timeout_s}s (last: {last}):\n{log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 40.0, wait: bool = True) -> int | None:
        """SIGTERM and wait for the graceful shutdown (as `docker stop`); SIGKILL if it overruns.

        SIGTERM goes once only: a second one makes uvicorn skip the graceful shutdown.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)
        if wait and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def run_to_completion(
    name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path, timeout_s: float = 120.0
) -> subprocess.CompletedProcess:
    """A one-off job (e.g. `migrate`), its output in `<log_dir>/<name>.log` and on the result."""
    result = subprocess.run(list(argv), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    (log_dir / f"{name}.log").write_text(result.stdout + result.stderr)
    return result


@contextlib.contextmanager
def running(
    processes: Sequence[ServiceProcess], probe: str = "ready", timeout_s: float = 90.0
) -> Iterator[dict[str, ServiceProcess]]:
    """Starts all at once (startup overlaps), waits until each is healthy, and always stops them all."""
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_healthy(probe, timeout_s)
        yield {p.name: p for p in processes}
    finally:  # all stop at once (the gateway first), then each is waited for
        for process in reversed(processes):
            process.terminate(wait=False)
        for process in reversed(processes):
            process.terminate(timeout_s=15.0)


# --- The slice: one order in at the gateway, the composed view out. -------------------------------------

SOURCE = "shop-eu"
# The gateway process gets it as GATEWAY_BOOTSTRAP_ADMIN_KEY; every call to the gateway sends it.
GATEWAY_ADMIN_KEY = "e2e-bootstrap-admin-key-6f1d0c2a9b"
GATEWAY_AUTH = {"X-API-Key": GATEWAY_ADMIN_KEY}


def order_completed(external_id: str, order_id: str = "A-1") -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": SOURCE,
        "type": "order.completed",
        "subject": external_id,
        "time": "2026-11-01T10:00:00Z",
        "data": {"order_id": order_id, "amount": "59.90", "currency": "EUR", "channel": "web"},
    }


async def post_one_order(client: httpx.AsyncClient, gateway_url: str, external_id: str) -> None:
    resp = await client.post(f"{gateway_url}/v1/events", json=[order_completed(external_id)])
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1, resp.text


async def customer_id_of(database_url: str, external_id: str, timeout_s: float = 30.0) -> uuid.UUID:
    """The internal id interaction gave the partner's customer; only a test may read another service's schema."""
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        while time.monotonic() < deadline:
            found = await conn.fetchval(
                "select customer_id from interaction.customer_identifier where source = $1 and external_id = $2",
                SOURCE,
                external_id,
            )
            if found is not None:
                return found
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise AssertionError(f"interaction never stored customer {SOURCE}/{external_id}")


async def wait_composed_view(
    client: httpx.AsyncClient, gateway_url: str, customer_id: uuid.UUID, timeout_s: float = 60.0
) -> dict:
    """Polls `GET /v1/customers/{id}` until every consumer has projected the one purchase."""
    deadline = time.monotonic() + timeout_s
    view: dict | str = "no answer"
    while time.monotonic() < deadline:
        resp = await client.get(f"{gateway_url}/v1/customers/{customer_id}")
        view = resp.json() if resp.status_code == 200 else f"{resp.status_code} {resp.text}"
        if (
            isinstance(view, dict)
            and all(view[p] is not None for p in ("segmentation", "value", "lifecycle"))
            and view["lifecycle"]["stage"] == "development"
            and view["segmentation"]["order_count"] == 1
        ):
            return view
        await asyncio.sleep(0.3)
    raise AssertionError(f"the composed view never showed the purchase; last: {view}")


async def drive_one_order(gateway_url: str, database_url: str, external_id: str = "C-1") -> dict:
    """Posts one `order.completed` to the gateway and returns the composed view once it is complete."""
    async with httpx.AsyncClient(timeout=15.0, headers=GATEWAY_AUTH) as client:
        await post_one_order(client, gateway_url, external_id)
        customer_id = await customer_id_of(database_url, external_id)
        view = await wait_composed_view(client, gateway_url, customer_id)
    assert view["customer_id"] == str(customer_id)
    assert view["unavailable"] == []
    assert view["profile"]["purchase_count"] == 1
    assert view["segmentation"]["order_count"] == 1
    assert view["lifecycle"]["stage"] == "development"
    [eur] = view["value"]["by_currency"]
    assert (eur["currency"], eur["purchase_count"], Decimal(eur["historical_value"])) == ("EUR", 1, Decimal("59.90")), eur
    return view
