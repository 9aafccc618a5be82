import asyncio
import re
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
    """One call for a customer screen. Every null part says why: its service is down (`unavailable`) or it
    knows nothing of the customer yet (`absent`, with the service's reason)."""

    customer_id: uuid.UUID = Field(description="The customer the parts are about: the survivor for a merged-away id.")
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into `customer_id`.")
    profile: dict[str, Any]
    segmentation: dict[str, Any] | None
    value: dict[str, Any] | None
    lifecycle: dict[str, Any] | None
    unavailable: list[str] = Field(default_factory=list,
                                   description="Parts whose service could not answer; the rest is still served.")
    absent: dict[str, str] = Field(default_factory=dict, description=(
        "Parts that are null because their service has nothing on this customer yet (e.g. no purchase to value, "
        "no lifecycle fact), each with the service's reason."))


RESOLVED = re.compile(rb'"resolved_from"\s*:\s*"')


class _Absent:
    """A part whose service answered 404: null in the view, with the reason it gave."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


@router.get("/{customer_id}", response_model=CustomerView,
            responses=problem_responses(NotFound, UpstreamUnavailable))
async def get_customer_view(customer_id: uuid.UUID, request: Request) -> Response:
    """The 360° customer view: profile, segmentation, value and lifecycle in one response.

    A merged-away id answers as its survivor in every part (the profile's service resolves the id; the other
    parts are asked for the survivor)."""
    upstreams = request.app.state.upstreams
    # Each part is read as the caller, never as the gateway itself (the security middleware set the principal).
    caller = request.scope[PRINCIPAL_SCOPE_KEY].caller

    async def fetch(service: str, suffix: str, cid: uuid.UUID) -> bytes | _Absent:
        resp = await upstreams.request(service, "GET", f"/v1/customers/{cid}{suffix}", caller=caller)
        if resp.status == 404:
            try:
                reason = str(orjson.loads(resp.body).get("detail") or "not found")
            except (orjson.JSONDecodeError, AttributeError):
                reason = "not found"
            return _Absent(f"{service}: {reason}")
        if resp.status != 200 or not resp.body.lstrip()[:1] == b"{":
            raise UpstreamUnavailable(f"{service} answered {resp.status}", service=service)
        return resp.body

    async def fetch_all(names: list[str], cid: uuid.UUID) -> dict[str, Any]:
        results = await asyncio.gather(*(fetch(*PARTS[p], cid) for p in names), return_exceptions=True)
        for value in results:
            if isinstance(value, BaseException) and not isinstance(value, DomainError):
                raise value
        return dict(zip(names, results, strict=True))

    parts = await fetch_all(list(PARTS), customer_id)
    if isinstance(parts["profile"], DomainError):
        raise parts["profile"]
    if isinstance(parts["profile"], _Absent):
        raise NotFound(f"no customer {customer_id}")
    subject, resolved_from = customer_id, None
    if RESOLVED.search(parts["profile"]):  # a cheap test first: the common answer stays unparsed
        survivor = uuid.UUID(orjson.loads(parts["profile"])["customer_id"])
        if survivor != customer_id:
            subject, resolved_from = survivor, customer_id
            parts |= await fetch_all([p for p in PARTS if p != "profile"], survivor)
    unavailable = [name for name, value in parts.items() if isinstance(value, DomainError)]
    absent = {name: value.reason for name, value in parts.items() if isinstance(value, _Absent)}
    # The services' JSON objects are spliced in as they are: re-parsing and re-validating them here would
    # cost more than the rest of the gateway's work on this hot path (the services validate what they send).
    body = b"".join([
        b'{"customer_id":"', str(subject).encode(), b'"',
        b',"resolved_from":', orjson.dumps(str(resolved_from) if resolved_from else None),
        *(b',"' + name.encode() + b'":' + (value if isinstance(value, bytes) else b"null")
          for name, value in parts.items()),
        b',"unavailable":', orjson.dumps(unavailable), b',"absent":', orjson.dumps(absent), b"}",
    ])
    return Response(body, media_type="application/json")
