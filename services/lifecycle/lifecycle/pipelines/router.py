import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Path, Query, Response

from shared.db import SessionDep
from shared.pagination import InvalidCursor, decode, encode
from shared.problems import NotFound, problem_responses
from shared.service import OutboxDep
from shared.validation import NO_NUL

from lifecycle.customers.service import UnknownCustomer
from lifecycle.pipelines import repository, service
from lifecycle.pipelines.schemas import (
    DealCreate,
    DealMove,
    DealPage,
    DealRead,
    DealStageRead,
    DealUpdate,
    Outcome,
    PipelineCreate,
    PipelinePage,
    PipelineRead,
    PipelineStageRead,
)

router = APIRouter(tags=["pipelines and deals"])
KEY = r"^[a-z0-9][a-z0-9_\-]*$"


def _pipeline(p: repository.PipelineDef) -> PipelineRead:
    return PipelineRead(
        id=p.id,
        key=p.key,
        name=p.name,
        lost_reasons=p.lost_reasons,
        stages=[
            PipelineStageRead(key=s.key, name=s.name, position=s.position, win_probability=s.win_probability, outcome=s.outcome)
            for s in p.ordered
        ],
    )


def _deal(r, history=()) -> DealRead:
    now = datetime.now(UTC)
    return DealRead(
        id=r["id"],
        customer_id=r["customer_id"],
        pipeline=r["pipeline_key"],
        stage=r["stage_key"],
        status=r["status"],
        win_probability=r["win_probability"] if r["win_probability"] is not None else 0,
        title=r["title"],
        amount=r["amount"],
        currency=r["currency"],
        expected_close=r["expected_close"],
        owner=r["owner"],
        lost_reason=r["lost_reason"],
        source=r["source"],
        external_id=r["external_id"],
        stage_entered_at=r["stage_entered_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        history=[
            DealStageRead(
                stage=h["stage_key"],
                entered_at=h["entered_at"],
                left_at=h["left_at"],
                seconds_in_stage=((h["left_at"] or now) - h["entered_at"]).total_seconds(),
                actor=h["actor"],
                trigger_event_id=h["trigger_event_id"],
            )
            for h in history
        ],
    )


@router.get("/v1/pipelines", response_model=PipelinePage)
async def list_pipelines(session: SessionDep) -> PipelinePage:
    """Every pipeline (marketing, sales, service and any added) with its ordered stages."""
    return PipelinePage(items=[_pipeline(p) for p in (await repository.pipelines(session)).values()])


@router.post("/v1/pipelines", response_model=PipelineRead, status_code=201, responses=problem_responses(service.Conflict))
async def create_pipeline(body: PipelineCreate, session: SessionDep) -> PipelineRead:
    """Add a pipeline: ordered stages with win probabilities, won/lost terminal stages, lost reasons."""
    return _pipeline(await service.create_pipeline(session, body))


@router.get("/v1/pipelines/{key}", response_model=PipelineRead, responses=problem_responses(NotFound))
async def get_pipeline(session: SessionDep, key: str = Path(max_length=100, pattern=KEY)) -> PipelineRead:
    """One pipeline."""
    return _pipeline(await service.pipeline_or_404(session, key))


@router.delete("/v1/pipelines/{key}", status_code=204, responses=problem_responses(NotFound, service.Conflict))
async def delete_pipeline(session: SessionDep, key: str = Path(max_length=100, pattern=KEY)) -> Response:
    """Remove a pipeline no deal uses."""
    await service.delete_pipeline(session, key)
    return Response(status_code=204)


@router.post(
    "/v1/deals", response_model=DealRead, status_code=201, responses=problem_responses(service.InvalidDeal, UnknownCustomer)
)
async def create_deal(body: DealCreate, session: SessionDep, outbox: OutboxDep) -> DealRead:
    """Open a deal for a customer interaction knows (an open deal also moves a prospect to Acquisition).

    A merged-away id opens the deal for its survivor; an id never announced by interaction, or erased, is a 422."""
    deal_id = await service.create_deal(session, outbox, body)
    return await _read_deal(session, deal_id)


async def _read_deal(session, deal_id: uuid.UUID) -> DealRead:
    row = await repository.get_deal(session, deal_id)
    if row is None:
        raise NotFound(f"no deal {deal_id}")
    return _deal(row, (await repository.history(session, [deal_id]))[deal_id])


@router.get("/v1/deals/{deal_id}", response_model=DealRead, responses=problem_responses(NotFound))
async def get_deal(deal_id: uuid.UUID, session: SessionDep) -> DealRead:
    """A deal with its stage history and time in each stage."""
    return await _read_deal(session, deal_id)


@router.patch("/v1/deals/{deal_id}", response_model=DealRead, responses=problem_responses(NotFound, service.InvalidDeal))
async def update_deal(deal_id: uuid.UUID, body: DealUpdate, session: SessionDep) -> DealRead:
    """Change a deal's amount, currency, expected close, owner or title."""
    await service.update_deal(session, deal_id, body)
    return await _read_deal(session, deal_id)


@router.post(
    "/v1/deals/{deal_id}/moves",
    response_model=DealRead,
    status_code=201,
    responses=problem_responses(NotFound, service.InvalidDeal),
)
async def move_deal(deal_id: uuid.UUID, body: DealMove, session: SessionDep, outbox: OutboxDep) -> DealRead:
    """Move a deal to another stage of its pipeline; a lost stage needs a lost reason."""
    await service.move_deal(session, outbox, deal_id, body)
    return await _read_deal(session, deal_id)


async def _page(session, limit: int, cursor: str | None, **filters) -> DealPage:
    after = decode(cursor, datetime, uuid.UUID)
    rows = await repository.page_deals(session, after=after, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    # Each deal with its history, as the deal resource shows it (one query for the page).
    history = await repository.history(session, [r["id"] for r in rows])
    return DealPage(
        items=[_deal(r, history[r["id"]]) for r in rows],
        next_cursor=encode(rows[-1]["created_at"], rows[-1]["id"]) if more else None,
    )


@router.get("/v1/deals", response_model=DealPage, responses=problem_responses(InvalidCursor))
async def list_deals(
    session: SessionDep,
    pipeline: str | None = Query(None, max_length=100, pattern=KEY),
    status: Outcome | None = None,
    owner: str | None = Query(None, max_length=200, pattern=NO_NUL),
    customer_id: uuid.UUID | None = None,
    cursor: str | None = Query(None, max_length=200, pattern=NO_NUL),
    limit: int = Query(50, ge=1, le=500),
) -> DealPage:
    """Deals, oldest first, filtered by pipeline, status, owner or customer."""
    return await _page(
        session,
        limit,
        cursor,
        customer_id=customer_id,
        pipeline_key=pipeline,
        status=status.value if status else None,
        owner=owner,
    )


@router.get("/v1/customers/{customer_id}/deals", response_model=DealPage, responses=problem_responses(InvalidCursor))
async def list_customer_deals(
    customer_id: uuid.UUID,
    session: SessionDep,
    status: Outcome | None = None,
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
) -> DealPage:
    """A customer's deals."""
    return await _page(
        session, limit, cursor, customer_id=customer_id, pipeline_key=None, status=status.value if status else None, owner=None
    )
