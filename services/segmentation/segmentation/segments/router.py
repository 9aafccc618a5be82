import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from shared.db import SessionDep
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import NotFound, problem_responses

from segmentation.rules.language import InvalidDefinition
from segmentation.rules.service import SegmentExists, create_rule_segment, preview
from segmentation.segments import repository
from segmentation.segments.schemas import (
    Kind,
    Member,
    MemberPage,
    MembershipHistoryPage,
    MembershipRecord,
    RulePreview,
    RulePreviewRequest,
    RuleSegmentCreate,
    SegmentPage,
    SegmentRead,
)

router = APIRouter(tags=["segments"])


def _currency(request: Request, currency: str | None) -> str:
    return currency or request.app.state.runtime.settings.reporting_currency


@router.get("/v1/segments", response_model=SegmentPage, responses=problem_responses(InvalidCursor))
async def list_segments(session: SessionDep, limit: Limit = 100, cursor: Cursor = None, kind: Kind | None = None,
                        family: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9:\-]+$")] = None) -> SegmentPage:
    """Segments of every kind with their summaries (size, revenue share, average value, movement)."""
    after = decode(cursor, str)
    rows = await repository.list_segments(session, kind=kind, family=family, after=after[0] if after else None,
                                          limit=limit + 1)
    items = [SegmentRead.model_validate(r) for r in rows[:limit]]
    return SegmentPage(items=items, next_cursor=encode(items[-1].key) if len(rows) > limit else None)


@router.post("/v1/segments", response_model=SegmentRead, status_code=201,
             responses=problem_responses(InvalidDefinition, SegmentExists))
async def create_segment(body: RuleSegmentCreate, request: Request, session: SessionDep) -> SegmentRead:
    """Save a rule segment; its members are evaluated now and kept current as events arrive and on every run."""
    segment_id = await create_rule_segment(
        session, request.app.state.runtime.outbox, key=body.key, name=body.name, description=body.description,
        rule=body.rule, currency=_currency(request, body.currency))
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.post("/v1/segments/preview", response_model=RulePreview, responses=problem_responses(InvalidDefinition))
async def preview_segment(body: RulePreviewRequest, request: Request, session: SessionDep) -> RulePreview:
    """How many customers a rule selects right now (and a sample), without saving it."""
    count, sample = await preview(session, body.rule, _currency(request, body.currency))
    return RulePreview(count=count, sample=sample)


@router.get("/v1/segments/{segment_id}", response_model=SegmentRead, responses=problem_responses(NotFound))
async def read_segment(segment_id: uuid.UUID, session: SessionDep) -> SegmentRead:
    """One segment with its summary."""
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.get("/v1/segments/{segment_id}/members", response_model=MemberPage,
            responses=problem_responses(NotFound, InvalidCursor))
async def segment_members(segment_id: uuid.UUID, session: SessionDep, limit: Limit = 100,
                          cursor: Cursor = None) -> MemberPage:
    """Current members of a segment, by customer id."""
    await repository.get_segment(session, segment_id)
    after = decode(cursor, uuid.UUID)
    rows = await repository.members(session, segment_id, after[0] if after else None, limit + 1)
    items = [Member(customer_id=r.customer_id, entered_at=r.entered_at) for r in rows[:limit]]
    return MemberPage(items=items, next_cursor=encode(items[-1].customer_id) if len(rows) > limit else None)


@router.get("/v1/customers/{customer_id}/segments/history", response_model=MembershipHistoryPage,
            responses=problem_responses(NotFound, InvalidCursor))
async def membership_history(customer_id: uuid.UUID, session: SessionDep, limit: Limit = 100,
                             cursor: Cursor = None) -> MembershipHistoryPage:
    """When the customer entered and left each segment, newest first."""
    resolved = await repository.resolve_customer(session, customer_id)
    after = decode(cursor, int)
    rows = await repository.history(session, resolved, after[0] if after else None, limit + 1)
    if not rows and after is None:
        known = await repository.customer_known(session, resolved)
        if not known:
            raise NotFound(f"segmentation knows nothing of customer {customer_id}")
    items = [MembershipRecord.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode(rows[limit - 1]["membership_id"]) if len(rows) > limit else None
    return MembershipHistoryPage(customer_id=resolved, items=items, next_cursor=next_cursor)
