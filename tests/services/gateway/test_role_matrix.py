"""R7: every route of the merged OpenAPI document × every role, plus anonymous callers and JWT users.

The routes come from the document the gateway serves, so routes the services add later are covered without
editing this test. The expected matrix is written from the specification, independently of the gateway's code.
"""

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from deploy.local.ports import free_port
from tests.services.gateway.conftest import Stack, create_key, gateway_stack
from tests.support import complete_openapi

ROLES = ["admin", "frontend", "analyst", "partner"]
METHODS = {"get", "post", "put", "patch", "delete"}


def may(role: str, method: str, path: str) -> bool:
    """The specification: admin all; frontend all but key management, ingestion, partner registry changes,
    cost settings changes and registering custom event types; analyst reads (GET, and the POSTs that only read:
    the rule preview and starting a segment's CSV export); partner ingests."""
    key_management = path.startswith("/v1/api-keys")
    ingestion = method == "POST" and path == "/v1/events"
    partner_registry = method not in {"GET", "HEAD"} and path.startswith("/v1/partners")
    cost_settings = method not in {"GET", "HEAD"} and path.startswith("/v1/value/profitability/settings")
    event_types = method not in {"GET", "HEAD"} and path.startswith("/v1/event-types")
    if role == "admin":
        return True
    if role == "partner":
        return ingestion
    if key_management or ingestion or partner_registry or cost_settings or event_types:
        return False
    segment_export = path.startswith("/v1/segments/") and path.endswith("/exports") and path.count("/") == 4
    read_only_post = method == "POST" and (path == "/v1/segments/preview" or segment_export)
    return role == "frontend" or method == "GET" or read_only_post


def example_value(schema: dict) -> str:
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return "1"
    return "x"


def operations(doc: dict) -> list[tuple[str, str, dict]]:
    """(method, concrete path, operation) for every secured operation."""
    out = []
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS or op.get("security") == []:
                continue
            path = template
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    path = path.replace("{" + param["name"] + "}", example_value(param.get("schema", {})))
            out.append((method.upper(), path, op))
    return out


async def test_every_route_times_every_role(stack: Stack) -> None:
    keys = {role: await create_key(stack, role, partner="shop-eu" if role == "partner" else None) for role in ROLES}
    async with stack.client() as admin:
        doc = await complete_openapi(admin)
    ops = operations(doc)
    assert len(ops) >= 15, "the merged document lists the services' routes and the gateway's own"
    assert {"/v1/events", "/v1/event-types", "/v1/api-keys", "/v1/webhooks"} <= {p for _, p, _ in ops}
    failures = []
    for method, path, op in ops:
        body = {"json": []} if "requestBody" in op else {}
        async with stack.client(key=None) as anonymous:
            resp = await anonymous.request(method, path, **body)
            if resp.status_code != 401:
                failures.append(f"anonymous {method} {path}: {resp.status_code}")
        for role, key in keys.items():
            async with stack.client(key) as client:
                resp = await client.request(method, path, **body)
            allowed = may(role, method, path)
            if allowed and resp.status_code in (401, 403):
                failures.append(f"{role} {method} {path}: {resp.status_code} but should be allowed")
            if not allowed and resp.status_code != 403:
                failures.append(f"{role} {method} {path}: {resp.status_code} but should be 403")
            if resp.status_code == 403:
                assert resp.headers["content-type"].startswith("application/problem+json")
            if resp.status_code >= 500:
                failures.append(f"{role} {method} {path}: {resp.status_code} {resp.text[:200]}")
    assert not failures, "\n".join(failures)


@contextlib.asynccontextmanager
async def jwks_server() -> AsyncIterator[tuple[str, object, object]]:
    """A local identity provider's JWKS endpoint on 127.0.0.1; yields (its URL, its signing key, a stranger's)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key())) | {"kid": "k1", "use": "sig", "alg": "RS256"}
    app = web.Application()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app.router.add_get("/.well-known/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json", private, other
    finally:
        await runner.cleanup()


def token(key, role: str | None, *, expires_in: int = 300, sub: str | None = "user-1", aud: str = "crm") -> str:
    claims = {"exp": int(time.time()) + expires_in, "aud": aud, "iss": "https://idp.test"}
    if sub:
        claims["sub"] = sub
    if role:
        claims["role"] = role
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


async def test_jwt_bearer_tokens_from_a_jwks(database_url: str) -> None:
    async with (
        jwks_server() as (jwks_url, signer, stranger),
        gateway_stack(
            database_url, services=(), jwt_jwks_url=jwks_url, jwt_audience="crm", jwt_issuer="https://idp.test"
        ) as stack,
    ):

        async def call(tok: str, method: str = "GET", path: str = "/v1/webhooks", **kw) -> int:
            async with stack.client(key=None, headers={"Authorization": f"Bearer {tok}"}) as c:
                return (await c.request(method, path, **kw)).status_code

        assert await call(token(signer, "frontend")) == 200
        assert await call(token(signer, "analyst")) == 200
        assert await call(token(signer, "analyst"), "POST", "/v1/webhooks", json={}) == 403
        assert await call(token(signer, "frontend"), "GET", "/v1/api-keys") == 403
        assert await call(token(signer, "admin")) == 401, "roles a token may carry are configured"
        assert await call(token(signer, None)) == 401
        assert await call(token(signer, "frontend", expires_in=-10)) == 401
        assert await call(token(signer, "frontend", aud="other")) == 401
        assert await call(token(signer, "frontend", sub=None)) == 401
        assert await call(token(stranger, "frontend")) == 401, "signed by a key not in the JWKS"
        assert await call("not-a-jwt") == 401
        async with stack.client(key=None) as c:
            doc = (await c.get("/openapi.json")).json()  # only the gateway's own part is read
        assert "BearerAuth" in doc["components"]["securitySchemes"]
