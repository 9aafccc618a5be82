"""The gateway in front of the four real services, all in this process on real loopback ports.

Services share one in-process transport (the embedded mode's), so events flow without Kafka; the gateway
calls them over HTTP with its real upstream client, and tests call the gateway over HTTP too.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from deploy.local.ports import free_port
from shared.messaging.inprocess import InProcessTransport

import clv.app
import gateway.app
import interaction.app
import lifecycle.app
import segmentation.app
from clv.settings import ClvSettings
from gateway.settings import GatewaySettings
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from segmentation.settings import SegmentationSettings

ADMIN_KEY = "test-bootstrap-admin-key-0123456789abcdef"
SERVICES = {
    "interaction": (InteractionSettings, interaction.app.create_app),
    "segmentation": (SegmentationSettings, segmentation.app.create_app),
    "clv": (ClvSettings, clv.app.create_app),
    "lifecycle": (LifecycleSettings, lifecycle.app.create_app),
}


@contextlib.asynccontextmanager
async def served(app: FastAPI, port: int, **config) -> AsyncIterator[uvicorn.Server]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on", **config)
    )
    server.capture_signals = contextlib.nullcontext  # the test runner owns the signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Stack:
    gateway_url: str
    service_urls: dict[str, str]
    database_url: str
    settings: GatewaySettings
    app: FastAPI
    servers: dict[str, uvicorn.Server] = field(default_factory=dict)

    def client(self, key: str | None = ADMIN_KEY, headers: dict[str, str] | None = None, **kwargs) -> httpx.AsyncClient:
        headers = ({"X-API-Key": key} if key else {}) | (headers or {})
        return httpx.AsyncClient(base_url=self.gateway_url, headers=headers, timeout=30.0, **kwargs)


@contextlib.asynccontextmanager
async def gateway_stack(
    database_url: str, *, services: tuple[str, ...] = tuple(SERVICES), service_settings: dict | None = None, **overrides
) -> AsyncIterator[Stack]:
    """Starts the given services (others' URLs point at closed ports) and a gateway in front of them.

    `service_settings` go to every service started, `overrides` to the gateway."""
    transport = InProcessTransport()
    common = {"database_url": database_url, "transport": "inprocess", "relay_poll_interval_s": 0.2, "db_pool_size": 6}
    ports = {name: free_port() for name in SERVICES}
    async with contextlib.AsyncExitStack() as stack:
        servers = {}
        for name in services:
            settings_cls, create_app = SERVICES[name]
            app = create_app(settings_cls(**(common | (service_settings or {}))), transport)
            servers[name] = await stack.enter_async_context(served(app, ports[name]))
        urls = {f"{n}_url": f"http://127.0.0.1:{p}" for n, p in ports.items()}
        settings = GatewaySettings(**(common | urls | {"bootstrap_admin_key": ADMIN_KEY, "log_json": False} | overrides))
        app = gateway.app.create_app(settings, transport)
        gw_port = free_port()
        # Served as `python -m gateway serve` serves it: with the read timeouts of its HTTP protocol.
        servers["gateway"] = await stack.enter_async_context(served(app, gw_port, http=settings.http_protocol()))
        yield Stack(
            f"http://127.0.0.1:{gw_port}",
            {n: f"http://127.0.0.1:{p}" for n, p in ports.items()},
            database_url,
            settings,
            app,
            servers,
        )


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with gateway_stack(database_url, webhook_poll_interval_s=0.1) as s:
        yield s


async def create_key(stack: Stack, role: str, partner: str | None = None, **extra) -> str:
    async with stack.client() as client:
        resp = await client.post("/v1/api-keys", json={"name": f"{role} test", "role": role, "partner_id": partner, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()["key"]


async def raw_request(
    base_url: str, request_line: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, bytes]:
    """One request written byte for byte: HTTP clients normalise `..` and `%2e` away before sending, attackers don't."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = {"Host": f"{host}:{port}", "Connection": "close", "Content-Length": str(len(body))} | (headers or {})
        writer.write(
            f"{request_line} HTTP/1.1\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items()) + b"\r\n" + body
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]
