import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import RowMapping

from shared.csv_stream import stream_csv
from shared.db import SessionDep
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import NotFound, problem_responses
from shared.service import OutboxDep

from segmentation.rules.language import InvalidDefinition
from segmentation.rules.service import (
    NotARuleSegment,
    SegmentArchived,
    SegmentExists,
    archive_rule_segment,
    create_rule_segment,
    edit_rule_segment,
    preview,
)
from segmentation.segments import csv_rows, repository
from segmentation.segments.schemas import (
    Kind,
    Member,
    MemberPage,
    MembershipHistoryPage,
    MembershipRecord,
    RulePreview,
    RulePreviewRequest,
    RuleSegmentCreate,
    RuleSegmentEdit,
    SegmentHistoryPage,
    SegmentHistoryRecord,
    SegmentPage,
    SegmentRead,
    SegmentVersion,
    SegmentVersionList,
)
from segmentation.settings import SegmentationSettings, SettingsDep

router = APIRouter(tags=["segments"])


def _currency(settings: SegmentationSettings, currency: str | None) -> str:
    return currency or settings.reporting_currency


@router.get("/v1/segments", response_model=SegmentPage, responses=problem_responses(InvalidCursor))
async def list_segments(
    session: SessionDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    kind: Kind | None = None,
    family: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9:\-]+$")] = None,
    include_archived: bool = False,
) -> SegmentPage:
    """Segments of every kind with their summaries (size, revenue share, average value, movement); archived rule
    segments only with `include_archived=true`."""
    after = decode(cursor, str)
    rows = await repository.list_segments(
        session, kind=kind, family=family, after=after[0] if after else None, limit=limit + 1, include_archived=include_archived
    )
    items = [SegmentRead.model_validate(r) for r in rows[:limit]]
    return SegmentPage(items=items, next_cursor=encode(items[-1].key) if len(rows) > limit else None)


@router.post(
    "/v1/segments", response_model=SegmentRead, status_code=201, responses=problem_responses(InvalidDefinition, SegmentExists)
)
async def create_segment(body: RuleSegmentCreate, session: SessionDep, outbox: OutboxDep, settings: SettingsDep) -> SegmentRead:
    """Save a rule segment; its members are evaluated now and kept current as events arrive and on every run."""
    segment_id = await create_rule_segment(
        session,
        outbox,
        key=body.key,
        name=body.name,
        description=body.description,
        rule=body.rule,
        currency=_currency(settings, body.currency),
    )
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.post("/v1/segments/preview", response_model=RulePreview, responses=problem_responses(InvalidDefinition))
async def preview_segment(body: RulePreviewRequest, session: SessionDep, settings: SettingsDep) -> RulePreview:
    """How many customers a rule selects right now (and a sample), without saving it."""
    count, sample = await preview(session, body.rule, _currency(settings, body.currency))
    return RulePreview(count=count, sample=sample)


@router.get("/v1/segments/{segment_id}", response_model=SegmentRead, responses=problem_responses(NotFound))
async def read_segment(segment_id: uuid.UUID, session: SessionDep) -> SegmentRead:
    """One segment with its summary."""
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.patch(
    "/v1/segments/{segment_id}",
    response_model=SegmentRead,
    responses=problem_responses(NotFound, InvalidDefinition, NotARuleSegment, SegmentArchived),
)
async def edit_segment(
    segment_id: uuid.UUID, body: RuleSegmentEdit, session: SessionDep, outbox: OutboxDep, settings: SettingsDep
) -> SegmentRead:
    """A new version of a rule segment; its members are re-evaluated now (entries and exits name the version)."""
    await edit_rule_segment(
        session, outbox, segment_id, changes=body.model_dump(exclude_unset=True), default_currency=_currency(settings, None)
    )
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.delete(
    "/v1/segments/{segment_id}",
    response_model=SegmentRead,
    responses=problem_responses(NotFound, NotARuleSegment, SegmentArchived),
)
async def archive_segment(segment_id: uuid.UUID, outbox: OutboxDep, session: SessionDep) -> SegmentRead:
    """Archive a rule segment (deleting is archiving): no longer evaluated nor listed, its members leave, its
    versions and history stay readable."""
    await archive_rule_segment(session, outbox, segment_id)
    return SegmentRead.model_validate(await repository.get_segment(session, segment_id))


@router.get("/v1/segments/{segment_id}/versions", response_model=SegmentVersionList, responses=problem_responses(NotFound))
async def segment_versions(segment_id: uuid.UUID, session: SessionDep) -> SegmentVersionList:
    """Every version of a rule segment's rule, newest first."""
    await repository.get_segment(session, segment_id)
    rows = await repository.versions(session, segment_id)
    return SegmentVersionList(segment_id=segment_id, items=[SegmentVersion.model_validate(dict(r)) for r in rows])


def _member(row: RowMapping) -> Member:
    return Member(
        customer_id=row["customer_id"],
        entered_at=row["entered_at"],
        entered_version=row["entered_version"],
        value=row["clv"],
        value_currency=row["clv_currency"],
        tier=row["value_tier"],
        stage=row["stage"],
    )


@router.get("/v1/segments/{segment_id}/members", response_model=MemberPage, responses=problem_responses(NotFound, InvalidCursor))
async def segment_members(segment_id: uuid.UUID, session: SessionDep, limit: Limit = 100, cursor: Cursor = None) -> MemberPage:
    """Current members of a segment with their value, tier and stage."""
    await repository.get_segment(session, segment_id)
    after = decode(cursor, uuid.UUID)
    rows = await repository.members(session, segment_id, after[0] if after else None, limit + 1)
    items = [_member(r) for r in rows[:limit]]
    return MemberPage(items=items, next_cursor=encode(items[-1].customer_id) if len(rows) > limit else None)


@router.get(
    "/v1/segments/{segment_id}/history", response_model=SegmentHistoryPage, responses=problem_responses(NotFound, InvalidCursor)
)
async def segment_history(
    segment_id: uuid.UUID, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> SegmentHistoryPage:
    """Who entered and left the segment, when, and by which rule version (or run), newest first."""
    await repository.get_segment(session, segment_id)
    after = decode(cursor, int)
    rows = await repository.segment_history(session, segment_id, after[0] if after else None, limit + 1)
    items = [SegmentHistoryRecord.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode(rows[limit - 1]["membership_id"]) if len(rows) > limit else None
    return SegmentHistoryPage(segment_id=segment_id, items=items, next_cursor=next_cursor)


EXPORT_PAGE = 2000
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV (RFC 4180), streamed page by page."}
}


def _csv(segment_id: uuid.UUID, what: str, factory) -> StreamingResponse:
    filename = f"segment-{segment_id}-{what}.csv"
    body = stream_csv(csv_rows.COLUMNS[what], csv_rows.pages(factory, what, segment_id, EXPORT_PAGE))
    return StreamingResponse(
        body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get(
    "/v1/segments/{segment_id}/members/export",
    response_class=StreamingResponse,
    responses={**problem_responses(NotFound), **CSV_RESPONSE},
)
async def export_members(segment_id: uuid.UUID, request: Request, session: SessionDep) -> StreamingResponse:
    """All current members as CSV, streamed: each page of rows is read in its own short transaction (the export
    holds no connection while the client is slow to read), so it is not one snapshot of a segment that moves.
    For a large segment, POST /v1/segments/{id}/exports runs the export as a job with progress instead."""
    await repository.get_segment(session, segment_id)
    return _csv(segment_id, "members", request.app.state.session_factory)


@router.get(
    "/v1/segments/{segment_id}/history/export",
    response_class=StreamingResponse,
    responses={**problem_responses(NotFound), **CSV_RESPONSE},
)
async def export_history(segment_id: uuid.UUID, request: Request, session: SessionDep) -> StreamingResponse:
    """The segment's whole history (entries and exits) as CSV, newest first, streamed as the members export is."""
    await repository.get_segment(session, segment_id)
    return _csv(segment_id, "history", request.app.state.session_factory)


@router.get(
    "/v1/customers/{customer_id}/segments/history",
    response_model=MembershipHistoryPage,
    responses=problem_responses(NotFound, InvalidCursor),
)
async def membership_history(
    customer_id: uuid.UUID, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> MembershipHistoryPage:
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
