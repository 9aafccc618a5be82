import asyncio
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from shared.problems import DomainError, NotFound, problem_responses

from gateway.security.principal import PRINCIPAL_SCOPE_KEY
from gateway.upstream import UpstreamUnavailable

router = APIRouter(prefix="/v1/customers", tags=["customers"])

# Part of the view → (service, path under /v1/customers/{id}).
PARTS = {
    "profile": ("interaction", ""),
    "segmentation": ("segmentation", "/segmentation"),
    "value": ("clv", "/value"),
    "lifecycle": ("lifecycle", "/lifecycle"),
}


class CustomerView(BaseModel):
    """One call for a customer screen. A part is null when its service knows nothing of the customer yet."""

    customer_id: uuid.UUID
    profile: dict[str, Any]
    segmentation: dict[str, Any] | None
    value: dict[str, Any] | None
    lifecycle: dict[str, Any] | None
    unavailable: list[str] = Field(default_factory=list,
                                   description="Parts whose service could not answer; the rest is still served.")


@router.get("/{customer_id}", response_model=CustomerView,
            responses=problem_responses(NotFound, UpstreamUnavailable))
async def get_customer_view(customer_id: uuid.UUID, request: Request) -> Response:
    """The 360° customer view: profile, segmentation, value and lifecycle in one response."""
    upstreams = request.app.state.upstreams
    # Each part is read as the caller, never as the gateway itself (the security middleware set the principal).
    caller = request.scope[PRINCIPAL_SCOPE_KEY].caller

    async def fetch(service: str, suffix: str) -> bytes | None:
        resp = await upstreams.request(service, "GET", f"/v1/customers/{customer_id}{suffix}", caller=caller)
        if resp.status == 404:
            return None
        if resp.status != 200 or not resp.body.lstrip()[:1] == b"{":
            raise UpstreamUnavailable(f"{service} answered {resp.status}", service=service)
        return resp.body

    results = await asyncio.gather(*(fetch(*PARTS[p]) for p in PARTS), return_exceptions=True)
    parts = dict(zip(PARTS, results, strict=True))
    for value in parts.values():
        if isinstance(value, BaseException) and not isinstance(value, DomainError):
            raise value
    if isinstance(parts["profile"], DomainError):
        raise parts["profile"]
    if parts["profile"] is None:
        raise NotFound(f"no customer {customer_id}")
    unavailable = [name for name, value in parts.items() if isinstance(value, DomainError)]
    # The services' JSON objects are spliced in as they are: re-parsing and re-validating them here would
    # cost more than the rest of the gateway's work on this hot path (the services validate what they send).
    body = b"".join([
        b'{"customer_id":"', str(customer_id).encode(), b'"',
        *(b',"' + name.encode() + b'":' + (b"null" if value is None or isinstance(value, DomainError) else value)
          for name, value in parts.items()),
        b',"unavailable":', orjson.dumps(unavailable), b"}",
    ])
    return Response(body, media_type="application/json")
