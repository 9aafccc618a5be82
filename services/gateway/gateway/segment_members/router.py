"""`GET /v1/segments/{segment_id}/members`, composed by the gateway (segmentation's page + name/email)."""

import uuid

from fastapi import APIRouter, Request, Response

from shared.pagination import Cursor, InvalidCursor, Limit
from shared.problems import NotFound, problem_responses

from gateway.security.principal import PRINCIPAL_SCOPE_KEY
from gateway.segment_members.schemas import MemberWithContactPage
from gateway.segment_members.service import members_page
from gateway.upstream import UpstreamUnavailable

router = APIRouter(tags=["segments"])


@router.get(
    "/v1/segments/{segment_id}/members",
    response_model=MemberWithContactPage,
    responses=problem_responses(NotFound, InvalidCursor, UpstreamUnavailable),
)
async def segment_members(segment_id: uuid.UUID, request: Request, limit: Limit = 100, cursor: Cursor = None) -> Response:
    """Current members of a segment with their value, tier and stage (segmentation's page, unchanged), and
    `name` and `email` where the customer granted the `email_marketing` consent and the caller's role may read
    customer profiles. The CSV export (`/members/export`) carries no names or emails."""
    answer = await members_page(
        request.app.state.upstreams,
        request.app.state.customer_views,
        request.scope[PRINCIPAL_SCOPE_KEY],
        segment_id,
        request.scope.get("query_string", b"").decode("latin-1"),
    )
    if isinstance(answer, bytes):
        return Response(answer, media_type="application/json")
    # Not a page (unknown segment, bad cursor…): segmentation's answer as it is.
    kept = (b"content-type", b"content-language")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer.headers if k.lower() in kept}
    return Response(answer.body, status_code=answer.status, headers=headers)
