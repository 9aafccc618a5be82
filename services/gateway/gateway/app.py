"""Composition root of the gateway: security in front, its own routes, then every service's routes proxied.

Its own schema `gateway` holds API keys, webhook subscriptions, the delivery log and the customer-view copy; one
consumer of the four domain topics enqueues webhook deliveries (a worker posts them) and keeps the copy.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from shared.db import asyncpg_dsn
from shared.http import fastapi_telemetry, health_router, install_http_plumbing
from shared.internal_auth import TokenSigner
from shared.messaging.transport import Transport
from shared.problems import install_problem_handlers
from shared.service import ServiceRuntime

from gateway.customer_view.projection import view_copy_subscription
from gateway.customer_view.router import router as customer_view_router
from gateway.customer_view.service import CustomerViews
from gateway.docs.openapi import OpenApiDocument
from gateway.docs.router import router as docs_router
from gateway.keys.router import router as keys_router
from gateway.keys.service import KeyStore
from gateway.proxy.event_posts import EventPosts
from gateway.proxy.router import ProxyMiddleware
from gateway.security.jwt import JwtVerifier
from gateway.security.middleware import SecurityMiddleware
from gateway.security.paths import PathGuardMiddleware
from gateway.security.rate_limit import TokenBuckets
from gateway.segment_members.router import router as segment_members_router
from gateway.settings import SCHEMA, GatewaySettings
from gateway.tables import messaging
from gateway.upstream import Upstreams
from gateway.webhooks.destinations import DestinationPolicy
from gateway.webhooks.projection import deliveries_subscription
from gateway.webhooks.router import router as webhooks_router
from gateway.webhooks.worker import DeliveryWorker

DESCRIPTION = """One front door: partner event ingestion, the 360° customer view, segmentation, value and lifecycle.

**Authentication**: every route except health and documentation needs a credential: an API key in the
`X-API-Key` header (roles `admin`, `frontend`, `analyst`, `partner`), or a JWT bearer token when configured.
Errors are RFC 9457 problem+json. Events are documented in AsyncAPI 3.0 at `/asyncapi`."""


def create_app(settings: GatewaySettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    destinations = DestinationPolicy(settings.webhook_allowed_hosts, settings.webhook_max_url_length)
    worker = DeliveryWorker(runtime.session_factory, settings, destinations)
    # Both read every event of the four domain topics: one consumer fetches and parses each event once.
    runtime.subscribe_together("domain-events", [deliveries_subscription(worker.wake), view_copy_subscription()])
    signer = TokenSigner(settings.internal_token_private_key, ttl_s=settings.internal_token_ttl_s)
    upstreams = Upstreams(
        settings.service_urls(),
        signer=signer,
        connect_timeout_s=settings.connect_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        max_connections=settings.max_connections,
        breaker_failures=settings.breaker_failures,
        breaker_cooloff_s=settings.breaker_cooloff_s,
        keepalive_s=settings.upstream_keepalive_s,
    )
    event_posts = EventPosts(upstreams, max_wait_s=settings.event_posts_group_wait_s) if settings.event_posts_grouped else None
    views = CustomerViews(
        upstreams,
        dsn=asyncpg_dsn(settings.database_url),
        pool_size=settings.view_copy_pool_size,
        settle_s=settings.view_copy_settle_s,
        max_age_s=settings.view_copy_max_age_s,
    )
    keys = KeyStore(
        runtime.session_factory,
        bootstrap_admin_key=settings.bootstrap_admin_key,
        cache_ttl_s=settings.key_cache_ttl_s,
        last_used_flush_s=settings.last_used_flush_s,
        max_cached=settings.key_cache_max,
        max_unknown=settings.key_unknown_cache_max,
    )
    jwt = None
    if settings.jwt_jwks_url:
        jwt = JwtVerifier(
            settings.jwt_jwks_url,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            role_claim=settings.jwt_role_claim,
            allowed_roles=settings.jwt_allowed_roles,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        await runtime.start()
        await views.start()
        keys.start()
        if settings.run_workers:
            worker.start()
        openapi.start()
        try:
            yield
        finally:
            await openapi.stop()
            await worker.stop()
            await keys.stop()
            await views.stop()
            await runtime.stop()
            await upstreams.stop()

    app = FastAPI(
        title="Customer-value CRM",
        description=DESCRIPTION,
        version="0.2.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # Looked up on each build: `install_problem_handlers` below wraps `app.openapi` to document the problems.
    openapi = OpenApiDocument(lambda: app.openapi(), upstreams, refresh_s=settings.openapi_refresh_s, bearer=jwt is not None)
    app.state.runtime = runtime
    app.state.session_factory = runtime.session_factory
    app.state.upstreams = upstreams
    app.state.customer_views = views
    app.state.settings = settings
    app.state.keys = keys
    app.state.webhook_worker = worker
    app.state.webhook_destinations = destinations
    app.state.openapi = openapi
    app.state.event_posts = event_posts
    install_problem_handlers(app)
    app.add_middleware(ProxyMiddleware, upstreams=upstreams, event_posts=event_posts)
    app.add_middleware(
        SecurityMiddleware,
        keys=lambda: keys,
        jwt=jwt,
        buckets=TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst),
        max_body_bytes=settings.max_body_bytes,
        failed_auth=TokenBuckets(settings.failed_auth_per_s, settings.failed_auth_burst),
    )
    # Outside the security layer: the policy decides on the same canonical path the proxy forwards.
    app.add_middleware(PathGuardMiddleware)
    install_http_plumbing(app, settings.service_name)
    if origins := settings.cors_origins:
        # Outermost: preflights are answered before authentication, and errors carry the CORS headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["*"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "X-Correlation-ID"],
            expose_headers=["X-Correlation-ID", "Retry-After"],
            max_age=settings.cors_max_age_s,
        )
    # Readiness covers the gateway's own dependencies only: a down service degrades its routes, not the gateway.
    app.include_router(
        health_router(
            {
                "database": runtime.check_database,
                "transport": runtime.check_transport,
                "workers": runtime.check_workers,
            }
        )
    )
    app.include_router(docs_router)
    app.include_router(customer_view_router)
    app.include_router(segment_members_router)
    app.include_router(keys_router)
    app.include_router(webhooks_router)
    return app
