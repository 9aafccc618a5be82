"""HTTP plumbing every service mounts: correlation ids, request metrics, health and /metrics."""

import os
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.log import correlation_id, new_correlation_id
from shared.problems import DomainError, problem_response, problem_responses
from shared.validation import find_unstorable, printable, text_problem

CORRELATION_HEADER = "x-correlation-id"


def fastapi_telemetry() -> TelemetryConfig | None:
    """`FastAPI(telemetry=...)` for every app. FastAPI's own OpenTelemetry instrumentation asks three global
    providers, each through the environment, on every request (4% of the gateway's CPU per forwarded event
    post under py-spy, `python -m bench http_ingest`); this project installs no OpenTelemetry SDK, so it could
    never record anything. Its metrics are Prometheus's (below). An operator who installs the SDK and
    exporters turns it back on with FastAPI's own `FASTAPI_OTEL_AUTO_CONFIGURE=true`."""
    if os.getenv("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return None
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


HTTP_REQUESTS = Counter("crm_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("crm_http_request_seconds", "HTTP request latency", ["service", "method", "route"])


class CorrelationMiddleware:
    """Takes `X-Correlation-ID` from the request (or mints one), exposes it to logs and events, echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == CORRELATION_HEADER.encode()), None)
        cid = incoming if incoming and len(incoming) <= 100 else new_correlation_id()
        token = correlation_id.set(cid)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((CORRELATION_HEADER.encode(), cid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            correlation_id.reset(token)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            # The route template, not the raw path, keeps label cardinality bounded.
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status[0])).inc()
            HTTP_SECONDS.labels(self.service, scope["method"], route).observe(time.perf_counter() - started)


def _json_content(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return not content_type or content_type == "application/json" or content_type.endswith("+json")


async def reject_unstorable_input(request: Request) -> None:
    """Every route's path and query parameters and JSON body: a value no service can store is a 422 naming it.

    Runs as an app-wide dependency, after FastAPI has parsed the body (the parse is cached on the request, so
    this walks the same document) and before the body model is validated. A route that reads its body itself
    (event ingestion) declares no body model and checks its items one by one.
    """
    errors: list[dict] = []
    for where, params in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in params:
            if isinstance(value, str) and (problem := text_problem(value)):
                errors.append({"loc": (where, printable(name)), "msg": problem, "type": "value_error"})
    if getattr(request.scope.get("route"), "body_field", None) is not None and _json_content(request):
        try:
            doc = await request.json() if await request.body() else None
        except Exception:  # noqa: BLE001 - not JSON: FastAPI reports it (it parsed the same body first)
            doc = None
        if found := find_unstorable(doc):
            loc, problem = found
            errors.append(
                {
                    "loc": ("body", *(printable(p) if isinstance(p, str) else p for p in loc)),
                    "msg": problem,
                    "type": "value_error",
                }
            )
    if errors:
        raise RequestValidationError(errors)


ReadinessCheck = Callable[[], Awaitable[None]]


class Readiness(BaseModel):
    status: str = Field(description="`ok`")
    checks: dict[str, str] = Field(description="Each dependency by name: `ok`, or `unavailable: ` and why.")


class NotReady(DomainError):
    status, slug, title, members = 503, "not-ready", "Not ready", Readiness


def health_router(checks: dict[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="Liveness: the process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        summary="Readiness: the database and the event transport answer",
        response_model=Readiness,
        responses=problem_responses(NotReady),
    )
    async def ready() -> Response:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by name
                results[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]
        failing = [n for n, r in results.items() if r != "ok"]
        if failing:
            return problem_response(503, NotReady.title, f"unavailable: {', '.join(failing)}", slug=NotReady.slug, checks=results)
        return JSONResponse({"status": "ok", "checks": results})

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_http_plumbing(app: FastAPI, service: str) -> None:
    """Call before including the routers: the input check applies to the routes included after it."""
    app.router.dependencies.append(Depends(reject_unstorable_input))
    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(CorrelationMiddleware)
