"""The services trust only the gateway: a request that reaches a service port without the gateway's token is
refused (issue 11, class 5). Real services on a real database; the gateway in front of real HTTP ports."""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deploy.local.ports import free_port
from shared.internal_auth import (
    CALLER_SCOPE_KEY,
    HEADER,
    Caller,
    InternalAuthMiddleware,
    TokenSigner,
    TokenVerifier,
    generate_keypair,
)
from tests.services.conftest import serving
from tests.services.gateway.conftest import ADMIN_KEY, gateway_stack, served
from tests.support import TEST_CALLER, gateway_signer

from interaction.app import create_app
from interaction.settings import InteractionSettings

ADMIN = Caller("someone", "admin")


def event(source: str = "shop-eu") -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": "order.completed",
        "subject": "C-1",
        "time": "2026-11-01T10:00:00Z",
        "data": {"order_id": "A-1", "amount": "9.90", "currency": "EUR", "channel": "web"},
    }


@pytest.fixture
async def interaction(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    async with serving(create_app(settings)) as client:
        yield client


def assert_refused(resp: httpx.Response, detail: str) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert detail in resp.json()["detail"], resp.json()


async def test_a_service_refuses_requests_without_the_gateways_token(interaction: httpx.AsyncClient) -> None:
    customer = f"/v1/customers/{uuid.uuid4()}"
    assert_refused(await interaction.get(customer, auth=None), "no internal token")
    assert_refused(await interaction.post("/v1/events", json=[event()], auth=None), "no internal token")
    assert_refused(await interaction.get("/openapi.json", auth=None), "no internal token")
    # What a client could try: its own headers, or the gateway's API key, mean nothing to a service.
    assert_refused(
        await interaction.get(customer, auth=None, headers={"X-API-Key": ADMIN_KEY, "X-Role": "admin"}), "no internal token"
    )
    assert_refused(await interaction.get(customer, headers={HEADER: "not-a-token"}), "invalid")
    # With the gateway's token the same request goes through to the service (an unknown customer: 404).
    assert (await interaction.get(customer)).status_code == 404


async def test_forged_expired_and_misaddressed_tokens_are_refused(interaction: httpx.AsyncClient) -> None:
    customer = f"/v1/customers/{uuid.uuid4()}"
    forged = TokenSigner(generate_keypair()[0]).token("interaction", ADMIN)
    assert_refused(await interaction.get(customer, headers={HEADER: forged}), "unknown key")
    expired = TokenSigner(os.environ["INTERNAL_TOKEN_PRIVATE_KEY"], ttl_s=60, clock=lambda: 1_700_000_000.0).token(
        "interaction", ADMIN
    )
    assert_refused(await interaction.get(customer, headers={HEADER: expired}), "expired")
    for_clv = gateway_signer().token("clv", ADMIN)
    assert_refused(await interaction.get(customer, headers={HEADER: for_clv}), "not for interaction")


async def test_health_and_metrics_stay_open(interaction: httpx.AsyncClient) -> None:
    for path in ["/health/live", "/health/ready", "/metrics"]:
        assert (await interaction.get(path, auth=None)).status_code == 200, path


# --- through the gateway --------------------------------------------------------------------------------


def echo_service(audience: str) -> Starlette:
    """Stands in for a service: answers with the caller its verified token names and the headers it got."""

    async def echo(request: Request) -> JSONResponse:
        caller: Caller = request.scope[CALLER_SCOPE_KEY]
        return JSONResponse(
            {
                "subject": caller.subject,
                "role": caller.role,
                "partner_id": caller.partner_id,
                "headers": sorted(request.headers.keys()),
            }
        )

    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    app.add_middleware(InternalAuthMiddleware, verifier=TokenVerifier(os.environ["INTERNAL_TOKEN_PUBLIC_KEY"], audience))
    return app


@contextlib.asynccontextmanager
async def echo_stack(database_url: str) -> AsyncIterator:
    """The gateway with an echo in place of interaction and of clv."""
    ports = {"interaction": free_port(), "clv": free_port()}
    async with contextlib.AsyncExitStack() as stack:
        for name, port in ports.items():
            await stack.enter_async_context(served(echo_service(name), port))
        yield await stack.enter_async_context(
            gateway_stack(database_url, services=(), **{f"{n}_url": f"http://127.0.0.1:{p}" for n, p in ports.items()})
        )


async def test_the_service_sees_the_principal_the_gateway_authenticated(database_url: str) -> None:
    async with echo_stack(database_url) as stack, stack.client() as admin:
        keys = {}
        for role, partner in (("analyst", None), ("partner", "shop-eu")):
            created = await admin.post("/v1/api-keys", json={"name": role, "role": role, "partner_id": partner})
            assert created.status_code == 201, created.text
            keys[role] = created.json()

        # A forged internal token from the client is dropped; the service gets the gateway's, for the key's owner.
        async with stack.client(keys["analyst"]["key"], headers={HEADER: "forged"}) as analyst:
            seen = (await analyst.get(f"/v1/customers/{uuid.uuid4()}/value")).json()
        assert (seen["subject"], seen["role"], seen["partner_id"]) == (keys["analyst"]["id"], "analyst", None)
        assert "x-api-key" not in seen["headers"]

        async with stack.client(keys["partner"]["key"]) as partner:
            resp = await partner.post("/v1/events", json=[event("shop-eu")])
        assert resp.status_code == 200, resp.text
        seen = resp.json()
        assert (seen["subject"], seen["role"], seen["partner_id"]) == (keys["partner"]["id"], "partner", "shop-eu")

        seen = (await admin.get(f"/v1/customers/{uuid.uuid4()}/value")).json()
        assert (seen["subject"], seen["role"]) == ("bootstrap-admin", "admin")


async def test_a_service_port_refuses_what_the_gateway_in_front_of_it_serves(database_url: str) -> None:
    """The real interaction service on its own port: the gateway's request goes through, a direct one does not."""
    async with gateway_stack(database_url, services=("interaction",)) as stack:
        async with stack.client() as via_gateway:
            assert (await via_gateway.post("/v1/events", json=[event()])).json()["accepted"] == 1
        async with httpx.AsyncClient(base_url=stack.service_urls["interaction"]) as direct:
            assert_refused(await direct.post("/v1/events", json=[event()]), "no internal token")
            assert_refused(await direct.post("/v1/events", json=[event()], headers={"X-API-Key": ADMIN_KEY}), "no internal token")
            assert (await direct.get("/health/ready")).status_code == 200
            token = gateway_signer().token("interaction", TEST_CALLER)
            assert (await direct.post("/v1/events", json=[event()], headers={HEADER: token})).status_code == 200
