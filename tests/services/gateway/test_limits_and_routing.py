"""Rate limits (429 + Retry-After), body size limits (413), CORS, routing by prefix, correlation ids, and the
circuit breaker's fail-fast 503 when a service is down."""

import contextlib
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from deploy.local.ports import free_port
from tests.services.gateway.conftest import create_key, gateway_stack


async def test_rate_limit_per_key_answers_429_with_retry_after(database_url: str) -> None:
    async with gateway_stack(database_url, services=(), rate_limit_per_s=0.5, rate_limit_burst=3) as stack:
        generous = await create_key(stack, "analyst", rate_limit_per_s=1000)
        limited = await create_key(stack, "analyst")
        async with stack.client(limited) as client:
            statuses = [(await client.get("/v1/webhooks")) for _ in range(5)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
        too_many = statuses[-1]
        assert too_many.headers["content-type"].startswith("application/problem+json")
        assert int(too_many.headers["retry-after"]) >= 1
        async with stack.client(generous) as client:
            assert [(await client.get("/v1/webhooks")).status_code for _ in range(10)] == [200] * 10


async def test_body_size_limit_answers_413_for_declared_and_streamed_bodies(database_url: str) -> None:
    async with gateway_stack(database_url, services=(), max_body_bytes=1000) as stack:
        big = {"url": "https://hooks.example.com/x", "event_types": ["stage.changed"], "description": "x" * 2000}
        async with stack.client() as admin:
            declared = await admin.post("/v1/webhooks", json=big)
            assert declared.status_code == 413, declared.text
            assert declared.headers["content-type"].startswith("application/problem+json")

            async def chunks():
                for _ in range(10):
                    yield b"[" + b" " * 300

            streamed = await admin.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
            assert streamed.status_code == 413, streamed.text
            small = await admin.post("/v1/webhooks", json={**big, "description": "ok"})
            assert small.status_code == 201


async def test_cors_from_env(database_url: str) -> None:
    async with gateway_stack(database_url, services=(), cors_origins="https://app.example.com") as stack:
        async with stack.client(key=None) as client:
            preflight = await client.options(
                "/v1/webhooks",
                headers={
                    "Origin": "https://app.example.com",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "X-API-Key, Content-Type",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
            assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
            denied = await client.options(
                "/v1/webhooks", headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}
            )
            assert "access-control-allow-origin" not in denied.headers
            # Errors carry the CORS headers too, so a browser app can read the problem.
            unauth = await client.get("/v1/webhooks", headers={"Origin": "https://app.example.com"})
            assert unauth.status_code == 401
            assert unauth.headers["access-control-allow-origin"] == "https://app.example.com"


@contextlib.asynccontextmanager
async def recording_service() -> AsyncIterator[tuple[str, list[dict]]]:
    """A stand-in upstream that records what the gateway forwards."""
    seen: list[dict] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(
            {"path": request.path_qs, "method": request.method, "headers": dict(request.headers), "body": await request.read()}
        )
        return web.json_response({"ok": True}, headers={"X-Correlation-ID": request.headers.get("X-Correlation-ID", "")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_routes_by_prefix_forward_correlation_and_never_credentials(database_url: str) -> None:
    async with recording_service() as (url, seen), gateway_stack(database_url, services=(), clv_url=url) as stack:
        async with stack.client(headers={"X-Correlation-ID": "corr-123"}) as admin:
            # Routes clv adds later are proxied without touching the gateway.
            resp = await admin.post("/v1/value/models/fits?x=1%202", json={"a": 1})
            assert resp.status_code == 200 and resp.headers["x-correlation-id"] == "corr-123"
            assert resp.headers.get_list("x-correlation-id") == ["corr-123"]
            resp = await admin.get(f"/v1/customers/{uuid.uuid4()}/propositions/latest")
            assert resp.status_code == 200
            unknown = await admin.get("/v1/nobody-owns-this")
            assert unknown.status_code == 404
            assert unknown.headers["content-type"].startswith("application/problem+json")
        seen = [s for s in seen if s["path"] != "/openapi.json"]  # the docs fetch it
        assert [s["path"] for s in seen][0] == "/v1/value/models/fits?x=1%202"
        assert seen[0]["method"] == "POST" and seen[0]["body"] == b'{"a":1}'
        for request in seen:
            assert request["headers"]["X-Correlation-ID"] == "corr-123"
            assert "X-API-Key" not in request["headers"] and "x-api-key" not in request["headers"]


async def test_down_service_fails_fast_with_503_and_opens_the_circuit(database_url: str) -> None:
    async with gateway_stack(database_url, services=("interaction",), breaker_failures=2, breaker_cooloff_s=30) as stack:
        async with stack.client() as admin:
            first = await admin.get(f"/v1/customers/{uuid.uuid4()}/value")
            assert first.status_code == 503
            assert first.headers["content-type"].startswith("application/problem+json")
            assert first.json()["service"] == "clv" and "clv" in first.json()["detail"]
            second = await admin.get("/v1/segmentation/runs")
            assert second.status_code == 503 and second.json()["service"] == "segmentation"
            again = await admin.get(f"/v1/customers/{uuid.uuid4()}/value")
            assert again.status_code == 503 and "circuit open" in again.json()["detail"]
            # The composed view still answers with what is up; the rest is listed as unavailable.
            key = await create_key(stack, "frontend")
        async with stack.client(key) as ui:
            await ui.post("/v1/events", json=[])  # frontend may not ingest
            missing = await ui.get(f"/v1/customers/{uuid.uuid4()}")
            assert missing.status_code == 404  # the profile's service is up and does not know the customer
