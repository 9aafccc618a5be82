"""`GET /v1/customers/{id}`: profile, segmentation, value and stage composed into one response."""

import uuid

from fastapi import APIRouter, Request, Response

from shared.problems import NotFound, problem_responses

from gateway.customer_view.schemas import CustomerView
from gateway.security.principal import PRINCIPAL_SCOPE_KEY
from gateway.upstream import UpstreamUnavailable

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}", response_model=CustomerView, responses=problem_responses(NotFound, UpstreamUnavailable))
async def get_customer_view(customer_id: uuid.UUID, request: Request) -> Response:
    """The 360° customer view: profile, segmentation, value and lifecycle in one response.

    Served from the gateway's copy of the parts where it is fresh (`sources` says, per part, how old it is and
    whether it came from the copy); `Cache-Control: no-cache` asks every owner. A merged-away id answers as
    its survivor in every part. An owner that is down is replaced by the copy, marked `stale`."""
    # Each part is read as the caller, never as the gateway itself (the security middleware set the principal).
    caller = request.scope[PRINCIPAL_SCOPE_KEY].caller
    live = "no-cache" in (request.headers.get("cache-control") or "").lower()
    body = await request.app.state.customer_views.compose(customer_id, caller, live=live)
    return Response(body, media_type="application/json")
