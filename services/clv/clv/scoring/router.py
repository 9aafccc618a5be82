import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from shared.db import SessionDep
from shared.jobs import JobInProgress
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import NotFound, problem_responses

from clv.scoring import service
from clv.scoring.schemas import ScoringCreate, ScoringRead, TierReport, ValueState, ValueStatePage
from clv.settings import SettingsDep

router = APIRouter(prefix="/v1/value", tags=["value scoring"])


@router.post(
    "/scorings",
    status_code=202,
    response_model=ScoringRead,
    responses=problem_responses(NotFound, service.FitNotUsable, JobInProgress),
)
async def create_scoring(
    body: ScoringCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    background: BackgroundTasks,
) -> ScoringRead:
    """Start scoring every customer of a currency; poll the returned run for status and progress."""
    row = await service.create_scoring(session, body, settings)
    # Launched once the transaction has committed (the session commits before the response is sent).
    background.add_task(service.launch_scoring, request.app, row.id, settings)
    response.headers["Location"] = f"/v1/value/scorings/{row.id}"
    return service.to_read(row)


@router.get("/scorings/{run_id}", response_model=ScoringRead, responses=problem_responses(NotFound))
async def get_scoring(run_id: uuid.UUID, session: SessionDep) -> ScoringRead:
    """One scoring run: status, progress, settings, tier thresholds, events published."""
    return await service.get(session, run_id)


@router.get("/tiers", response_model=TierReport)
async def get_tiers(session: SessionDep, currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")]) -> TierReport:
    """Customers and value per tier, from the latest scores."""
    return await service.tiers(session, currency)


@router.get("/state", response_model=ValueStatePage, responses=problem_responses(InvalidCursor))
async def value_state(
    session: SessionDep,
    limit: Limit = 500,
    cursor: Cursor = None,
    customer_id: Annotated[
        list[uuid.UUID] | None, Query(max_length=100, description=("Only these customers (one page)."))
    ] = None,
) -> ValueStatePage:
    """Every customer's value per currency with its version, in customer id order (`limit` customers a page):
    the state every copy of `customer.value_updated` must converge to (what `reconcile` compares copies with)."""
    after = decode(cursor, uuid.UUID)
    rows, full = await service.value_states(session, after=after[0] if after else None, limit=limit, customer_ids=customer_id)
    return ValueStatePage(
        items=[
            ValueState(
                customer_id=r.customer_id,
                currency=r.currency,
                clv=float(r.clv),
                tier=r.tier,
                probability_alive=r.probability_alive,
                as_of=r.as_of,
                version=r.version,
            )
            for r in rows
        ],
        next_cursor=encode(rows[-1].customer_id) if full else None,
    )
