"""Composition root of the gateway: no database of its own, only the services behind it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.http import health_router, install_http_plumbing
from shared.problems import install_problem_handlers

from gateway.customer_view.router import router as customer_view_router
from gateway.proxy.router import router as proxy_router
from gateway.settings import GatewaySettings
from gateway.upstream import UpstreamUnavailable, Upstreams


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    upstreams = Upstreams(settings.service_urls(), connect_timeout_s=settings.connect_timeout_s,
                          request_timeout_s=settings.request_timeout_s, max_connections=settings.max_connections)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        try:
            yield
        finally:
            await upstreams.stop()

    def service_ready(name: str):
        async def check() -> None:
            resp = await upstreams.request(name, "GET", "/health/ready")
            if resp.status != 200:
                raise UpstreamUnavailable(f"{name} is not ready ({resp.status})")

        return check

    app = FastAPI(
        title="Customer-value CRM",
        description="One front door: partner event ingestion, the 360° customer view, segmentation, value "
                    "and lifecycle. Errors are RFC 9457 problem+json.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.upstreams = upstreams
    app.state.settings = settings
    install_problem_handlers(app)
    install_http_plumbing(app, settings.service_name)
    app.include_router(health_router({name: service_ready(name) for name in settings.service_urls()}))
    app.include_router(customer_view_router)
    app.include_router(proxy_router)
    return app
