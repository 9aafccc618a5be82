"""A service process killed (SIGKILL) while the gateway waits on it: the caller gets 503 problem+json naming
the service, long before the gateway's own request timeout, and the circuit then fails fast."""

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.local.ports import free_port
from shared.db import asyncpg_dsn
from tests.e2e.processes import ServiceProcess, process_env, running, serve_argv
from tests.services.gateway.conftest import ADMIN_KEY, gateway_stack

pytestmark = [pytest.mark.slow, pytest.mark.kafka]
GATEWAY_TIMEOUT_S = 120.0  # far above what the test waits: a 503 can only come from the crash being noticed


async def test_service_killed_mid_request_gives_503_not_a_hang(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = process_env(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "TOPIC_PREFIX": topic_prefix,
            "LOG_JSON": "false",
        }
    )
    lifecycle = ServiceProcess("lifecycle", serve_argv("lifecycle", port), env, port, tmp_path)
    with running([lifecycle]):
        async with gateway_stack(
            database_url, services=(), lifecycle_url=lifecycle.url, request_timeout_s=GATEWAY_TIMEOUT_S, breaker_failures=2
        ) as stack:
            # Hold a lock the lifecycle read needs, so the request is in flight inside the service when it dies.
            blocker = await asyncpg.connect(asyncpg_dsn(database_url))
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE lifecycle.customer_stage IN ACCESS EXCLUSIVE MODE")
            try:
                async with httpx.AsyncClient(
                    base_url=stack.gateway_url, headers={"X-API-Key": ADMIN_KEY}, timeout=30.0
                ) as client:
                    pending = asyncio.create_task(client.get(f"/v1/customers/{uuid.uuid4()}/lifecycle"))
                    await _until_waiting_on_lock(blocker)
                    assert not pending.done()
                    lifecycle.kill()
                    resp = await pending  # the client's 30 s timeout turns a hang into a failure
                    assert resp.status_code == 503, resp.text
                    assert resp.headers["content-type"].startswith("application/problem+json")
                    assert resp.json()["service"] == "lifecycle"
                    again = await client.get(f"/v1/customers/{uuid.uuid4()}/lifecycle")
                    assert again.status_code == 503 and "circuit open" in again.json()["detail"]
            finally:
                await tx.rollback()
                await blocker.close()


async def _until_waiting_on_lock(conn: asyncpg.Connection) -> None:
    for _ in range(300):
        waiting = await conn.fetchval(
            "select count(*) from pg_locks where not granted and relation = 'lifecycle.customer_stage'::regclass"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the lifecycle read never reached the database")
