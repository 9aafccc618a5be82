"""The vertical slice with every service in its own OS process, as deployed: only HTTP and Kafka between them.

In-process tests share one interpreter and could hide a missing setting, an import-time side effect or a
dependency between services that is not a network call; here each process gets only its environment.
"""

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.local.ports import free_port
from shared.problems import PROBLEM_JSON
from tests.e2e.processes import (
    GATEWAY_ADMIN_KEY,
    GATEWAY_AUTH,
    ServiceProcess,
    drive_one_order,
    process_env,
    running,
    serve_argv,
)

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

SERVICES = ["interaction", "segmentation", "clv", "lifecycle"]
# The gateway gives up on an upstream after this long; the tests' own client waits a little longer.
GATEWAY_REQUEST_TIMEOUT_S = 5.0


@pytest.fixture
def stack(database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    """The four services and the gateway on the session's Kafka and a fresh migrated database."""
    shared = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TOPIC_PREFIX": topic_prefix,
        "TRANSPORT": "kafka",
        "LOG_JSON": "false",
    }
    ports = {name: free_port() for name in [*SERVICES, "gateway"]}
    gateway_env = {f"GATEWAY_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
    gateway_env |= {
        "GATEWAY_REQUEST_TIMEOUT_S": str(GATEWAY_REQUEST_TIMEOUT_S),
        "GATEWAY_LOG_JSON": "false",
        "GATEWAY_BOOTSTRAP_ADMIN_KEY": GATEWAY_ADMIN_KEY,
        **shared,
    }
    processes = [
        ServiceProcess(name, serve_argv(name, ports[name]), process_env(shared), ports[name], tmp_path) for name in SERVICES
    ]
    processes.append(
        ServiceProcess("gateway", serve_argv("gateway", ports["gateway"]), process_env(gateway_env), ports["gateway"], tmp_path)
    )
    with running(processes) as procs:
        yield procs


async def test_one_order_flows_through_separate_processes(stack: dict[str, ServiceProcess], database_url: str) -> None:
    """One order at the gateway reaches every service through Kafka and comes back as one composed view."""
    view = await drive_one_order(stack["gateway"].url, database_url)
    assert view["profile"]["identifiers"] == [{"kind": "source", "source": "shop-eu", "external_id": "C-1"}]

    # `docker stop`: SIGTERM, then each service must shut down cleanly within compose's 40 s grace period
    # (uvicorn re-raises SIGTERM once it is done, hence -15; -9 would mean it had to be killed).
    for name in SERVICES:
        stack[name].terminate(wait=False)
    for name in SERVICES:
        assert stack[name].terminate(timeout_s=40.0) in (0, -signal.SIGTERM), name
        assert "Application shutdown complete" in stack[name].log_path.read_text(), name


async def test_gateway_degrades_when_a_service_is_killed(stack: dict[str, ServiceProcess], database_url: str) -> None:
    """A crashed service costs nothing of the view but freshness: its part is served from the gateway's copy,
    marked stale (docs/gateway.md, "Composed view"); its own route answers 503 at once."""
    gateway = stack["gateway"].url
    view = await drive_one_order(gateway, database_url)
    customer_id = view["customer_id"]

    stack["clv"].kill()
    assert stack["clv"].proc.returncode == -9

    async with httpx.AsyncClient(timeout=GATEWAY_REQUEST_TIMEOUT_S + 5.0, headers=GATEWAY_AUTH) as client:
        resp = await client.get(f"{gateway}/v1/customers/{customer_id}")
        assert resp.status_code == 200, resp.text
        degraded = resp.json()
        assert degraded["unavailable"] == []
        assert degraded["value"] is not None
        assert degraded["sources"]["value"]["from_copy"] is True and degraded["sources"]["value"]["stale"] is True
        assert degraded["sources"]["profile"]["stale"] is False
        assert degraded["profile"]["purchase_count"] == 1
        assert degraded["segmentation"]["order_count"] == 1
        assert degraded["lifecycle"]["stage"] == "development"

        # The client's timeout is above the gateway's: a hang raises here instead of answering.
        resp = await client.get(f"{gateway}/v1/customers/{customer_id}/value")
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    problem = resp.json()
    assert problem["status"] == 503
    assert problem["service"] == "clv", problem
    assert "clv" in problem["detail"]
