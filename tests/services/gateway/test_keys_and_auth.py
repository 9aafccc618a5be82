"""API keys end to end: created by an admin, shown once, hashed at rest, revocable, expiring, last use recorded."""

import hashlib
import logging
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.db import asyncpg_dsn
from tests.services.gateway.conftest import ADMIN_KEY, Stack, create_key


async def test_anonymous_calls_get_401_problem_and_open_routes_stay_open(stack: Stack) -> None:
    async with stack.client(key=None) as client:
        for path in ["/v1/customers/" + str(uuid.uuid4()), "/v1/api-keys", "/v1/anything", "/nowhere"]:
            resp = await client.get(path)
            assert resp.status_code == 401, (path, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "X-API-Key" in resp.headers["www-authenticate"]
        bad = await client.get("/v1/api-keys", headers={"X-API-Key": "crm_not-a-real-key"})
        assert bad.status_code == 401
        for path in ["/health/live", "/health/ready", "/openapi.json", "/docs", "/asyncapi"]:
            assert (await client.get(path)).status_code == 200, path


async def test_key_lifecycle_create_use_revoke(stack: Stack) -> None:
    async with stack.client() as admin:
        created = await admin.post("/v1/api-keys", json={"name": "ui", "role": "frontend"})
        assert created.status_code == 201, created.text
        body = created.json()
        key, key_id = body["key"], body["id"]
        assert key.startswith("crm_") and len(key) > 40 and body["prefix"] == key[:10]

        listed = (await admin.get("/v1/api-keys")).json()["items"]
        assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
        assert (await admin.get(f"/v1/api-keys/{key_id}")).json()["revoked_at"] is None

    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        stored = await conn.fetchval("select key_hash from gateway.api_key where id = $1", uuid.UUID(key_id))
        assert bytes(stored) == hashlib.sha256(key.encode()).digest()
        dump = await conn.fetchval("select string_agg(t::text, ' ') from gateway.api_key t")
        assert key not in dump
    finally:
        await conn.close()

    async with stack.client(key) as ui:
        assert (await ui.get("/v1/webhooks")).status_code == 200
        assert (await ui.get("/v1/api-keys")).status_code == 403  # key management is admin only
    await stack.app.state.keys.flush()
    async with stack.client() as admin:
        assert (await admin.get(f"/v1/api-keys/{key_id}")).json()["last_used_at"] is not None
        revoked = await admin.delete(f"/v1/api-keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert (await admin.delete(f"/v1/api-keys/{uuid.uuid4()}")).status_code == 404
        assert (await admin.get("/v1/api-keys")).json()["items"] == []
        assert len((await admin.get("/v1/api-keys", params={"include_revoked": True})).json()["items"]) == 1
    async with stack.client(key) as ui:
        assert (await ui.get("/v1/webhooks")).status_code == 401


async def test_expired_keys_and_bad_requests(stack: Stack) -> None:
    async with stack.client() as admin:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert (await admin.post("/v1/api-keys", json={"name": "x", "role": "analyst", "expires_at": past})).status_code == 422
        assert (await admin.post("/v1/api-keys", json={"name": "x", "role": "partner"})).status_code == 422
        assert (await admin.post("/v1/api-keys", json={"name": "x", "role": "analyst", "partner_id": "p"})).status_code == 422
        assert (await admin.get("/v1/api-keys", params={"cursor": "garbage"})).status_code == 422
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    key = await create_key(stack, "analyst", expires_at=soon)
    async with stack.client(key) as analyst:
        assert (await analyst.get("/v1/webhooks")).status_code == 200
        import asyncio

        await asyncio.sleep(1.2)
        assert (await analyst.get("/v1/webhooks")).status_code == 401


async def test_partner_may_only_publish_under_its_own_source(stack: Stack) -> None:
    key = await create_key(stack, "partner", partner="shop-eu")
    ok = {
        "specversion": "1.0",
        "id": "e1",
        "source": "shop-eu",
        "type": "order.completed",
        "subject": "C-1",
        "time": "2026-11-01T10:00:00Z",
        "data": {"order_id": "A-1", "amount": "10.00", "currency": "EUR"},
    }
    foreign = {**ok, "id": "e2", "source": "pos-stores"}
    async with stack.client(key) as partner:
        resp = await partner.post("/v1/events", json=[ok, foreign])
        assert resp.status_code == 403, resp.text
        problem = resp.json()
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert problem["items"] == [{"index": 1, "id": "e2", "source": "pos-stores"}]
        resp = await partner.post("/v1/events", json=[ok])
        assert resp.status_code == 200, resp.text
        assert resp.json()["accepted"] == 1
        assert (await partner.get(f"/v1/customers/{uuid.uuid4()}")).status_code == 403
        assert (await partner.get("/v1/webhooks")).status_code == 403


async def test_a_lone_surrogate_does_not_hide_a_foreign_source_from_the_check(stack: Stack) -> None:
    """The interaction service keeps the valid events of a batch holding "\\ud800"; the gateway sees them too."""
    key = await create_key(stack, "partner", partner="shop-eu")
    foreign = (
        '{"specversion": "1.0", "id": "f1", "source": "pos-stores", "type": "order.completed", '
        '"subject": "C-1", "time": "2026-11-01T10:00:00Z", '
        '"data": {"order_id": "A-1", "amount": "10.00", "currency": "EUR"}}'
    )
    odd = '{"specversion": "1.0", "id": "\\ud800", "source": 1e999999, "type": "x", "time": "x", "data": {}}'
    async with stack.client(key, headers={"content-type": "application/json"}) as partner:
        resp = await partner.post("/v1/events", content=f"[{foreign}, {odd}]".encode())
    assert resp.status_code == 403, resp.text
    assert resp.json()["items"] == [
        {"index": 0, "id": "f1", "source": "pos-stores"},
        {"index": 1, "id": "\\ud800", "source": None},
    ]


async def test_secrets_never_reach_the_logs(stack: Stack, caplog) -> None:
    partner = await create_key(stack, "partner", partner="shop-eu")
    caplog.set_level(logging.DEBUG)
    async with stack.client(partner) as client:
        await client.post("/v1/events", json=[{"source": "other"}])
        await client.get("/v1/api-keys")
    async with stack.client("crm_wrong_secret_value_that_must_not_be_logged") as client:
        await client.get("/v1/webhooks")
    async with stack.client() as admin:
        created = (
            await admin.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "event_types": ["stage.changed"]})
        ).json()
        await admin.get(f"/v1/customers/{uuid.uuid4()}")
    text = "\n".join(r.getMessage() + repr(r.args) + str(r.__dict__) for r in caplog.records)
    for secret in [ADMIN_KEY, partner, "crm_wrong_secret_value_that_must_not_be_logged", created["secret"]]:
        assert secret not in text


async def test_cli_creates_lists_and_revokes_keys(stack: Stack) -> None:
    env = {"DATABASE_URL": stack.database_url, "GATEWAY_LOG_JSON": "false", "PATH": "/usr/bin:/bin"}
    created = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "create", "--role", "partner", "--partner", "shop-eu", "--name", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    async with stack.client(key) as partner:
        assert (await partner.get("/v1/webhooks")).status_code == 403  # authenticated, not allowed
    listed = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and "shop-eu" in listed.stdout and key not in listed.stdout
    key_id = listed.stdout.split()[0]
    revoked = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "revoke", key_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert revoked.returncode == 0, revoked.stderr
    stack.app.state.keys.forget(uuid.UUID(key_id))  # another process revoked it: this replica's cache expires
    async with stack.client(key) as partner:
        assert (await partner.get("/v1/webhooks")).status_code == 401
