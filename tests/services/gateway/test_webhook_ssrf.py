"""Security issue, class 4: webhooks are not a way into the internal network.

A frontend key subscribed `http://127.0.0.1:8004/...` and the delivery ran an internal endpoint; the stored
`last_error` told open ports from closed ones. Now the URL is checked at creation and update, the resolved
addresses are checked at every delivery (inside the client's resolver, so the connection goes where the
check looked), redirects are not followed, and the log keeps only a failure category.
"""

import uuid

import asyncpg
from aiohttp import web

from deploy.local.ports import free_port
from shared.contracts.lifecycle import Stage
from shared.db import asyncpg_dsn
from tests.services.gateway.conftest import Stack, create_key, gateway_stack
from tests.services.gateway.test_webhooks import publish, receiver, stage_changes
from tests.support import wait_until

REFUSED = [
    "http://127.0.0.1:8004/v1/lifecycle/sweep",
    "http://localhost:8004/x",
    "http://[::1]:8004/x",
    "http://[::ffff:127.0.0.1]:8004/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.1.2.3/x",
    "http://192.168.0.1/x",
    "http://172.16.0.1/x",
    "http://100.64.0.1/x",
    "http://0.0.0.0:8004/x",
    "http://224.0.0.1/x",
    "http://[fe80::1]/x",
    "http://0x7f.1:8004/x",
    "http://2130706433:8004/x",
    "https://user:secret@hooks.example.com/x",
    "https://token@hooks.example.com/x",
    "ftp://hooks.example.com/x",
    "https://hooks.example.com/" + "a" * 2100,
]


async def _last_attempt(stack: Stack, sub_id: str) -> dict:
    async with stack.client() as admin:
        items = (await admin.get(f"/v1/webhooks/{sub_id}/deliveries")).json()["items"]
    return items[0] if items and items[0]["attempts"] >= 1 else {}


async def _insert_subscription(stack: Stack, url: str) -> str:
    """A row the API would refuse today: created before the rules, or a name whose DNS answer changed since."""
    sub_id = uuid.uuid4()
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        await conn.execute(
            "insert into gateway.webhook_subscription (id, url, event_types, secret) values ($1, $2, $3, 'whsec_test')",
            sub_id,
            url,
            ["stage.changed"],
        )
    finally:
        await conn.close()
    return str(sub_id)


async def test_internal_and_credential_urls_are_refused_at_creation_and_update(stack: Stack) -> None:
    frontend = await create_key(stack, "frontend")
    async with stack.client(frontend) as ui:
        for url in REFUSED:
            resp = await ui.post("/v1/webhooks", json={"url": url, "event_types": ["stage.changed"]})
            assert resp.status_code == 422, (url, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
        ok = await ui.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "event_types": ["stage.changed"]})
        assert ok.status_code == 201, ok.text
        moved = await ui.patch(f"/v1/webhooks/{ok.json()['id']}", json={"url": "http://127.0.0.1:8004/x"})
        assert moved.status_code == 422 and moved.json()["type"].endswith("/webhook-url-not-allowed")
        assert (await ui.get(f"/v1/webhooks/{ok.json()['id']}")).json()["url"] == "https://hooks.example.com/x"


async def test_delivery_resolves_and_refuses_non_public_addresses(database_url: str) -> None:
    async with (
        receiver() as rec,
        gateway_stack(database_url, services=(), webhook_poll_interval_s=0.05, webhook_max_attempts=1) as stack,
    ):
        port = rec.url.split(":")[2].split("/")[0]
        by_name = await _insert_subscription(stack, f"http://localhost:{port}/hook")  # vetted after DNS
        by_address = await _insert_subscription(stack, f"http://127.0.0.1:{port}/hook")
        with_credentials = await _insert_subscription(stack, "https://user:pw@hooks.example.com/x")
        await publish(stack, stage_changes(uuid.uuid4(), [Stage.APPROACH]))

        async def all_attempted() -> bool:
            return all([await _last_attempt(stack, s) for s in (by_name, by_address, with_credentials)])

        await wait_until(all_attempted, timeout=30, message="one attempt per subscription")
        assert (await _last_attempt(stack, by_name))["last_error"] == "refused: address not allowed"
        assert (await _last_attempt(stack, by_address))["last_error"] == "refused: address not allowed"
        assert (await _last_attempt(stack, with_credentials))["last_error"] == "refused: URL not allowed"
        assert rec.received == [], "nothing reached the loopback receiver"


async def test_the_delivery_log_records_categories_and_redirects_are_not_followed(database_url: str) -> None:
    internal_hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        internal_hits.append(request.path)
        return web.Response(text="secret")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{request.url.port}/internal")

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/internal", internal)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with gateway_stack(
            database_url, services=(), webhook_poll_interval_s=0.05, webhook_max_attempts=1, webhook_allowed_hosts="127.0.0.1"
        ) as stack:
            closed_port = free_port()
            async with stack.client() as admin:
                subs = {}
                for name, url in [
                    ("closed", f"http://127.0.0.1:{closed_port}/hook"),
                    ("redirect", f"http://127.0.0.1:{port}/redirect"),
                ]:
                    resp = await admin.post("/v1/webhooks", json={"url": url, "event_types": ["stage.changed"]})
                    assert resp.status_code == 201, resp.text
                    subs[name] = resp.json()["id"]
            await publish(stack, stage_changes(uuid.uuid4(), [Stage.APPROACH]))

            async def attempted() -> bool:
                return all([await _last_attempt(stack, s) for s in subs.values()])

            await wait_until(attempted, timeout=30, message="one attempt per subscription")
            closed = await _last_attempt(stack, subs["closed"])
            assert closed["last_error"] == "connection refused", closed
            redirected = await _last_attempt(stack, subs["redirect"])
            assert redirected["last_status_code"] == 302 and redirected["status"] == "failed"
            assert redirected["last_error"] == "HTTP 302: redirects are not followed"
            assert internal_hits == []
    finally:
        await runner.cleanup()
