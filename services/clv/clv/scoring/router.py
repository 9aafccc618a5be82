import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shared.db import SessionDep
from shared.jobs import JobInProgress
from shared.problems import NotFound, problem_responses

from clv.scoring import service
from clv.scoring.schemas import ScoringCreate, ScoringRead, TierReport

router = APIRouter(prefix="/v1/value", tags=["value scoring"])


@router.post("/scorings", status_code=202, response_model=ScoringRead,
             responses=problem_responses(NotFound, service.FitNotUsable, JobInProgress))
async def create_scoring(body: ScoringCreate, request: Request, response: Response, session: SessionDep) -> ScoringRead:
    """Start scoring every customer of a currency; poll the returned run for status and progress."""
    run = await service.start_scoring(request.app, session, body, request.app.state.runtime.settings)
    response.headers["Location"] = f"/v1/value/scorings/{run.id}"
    return run


@router.get("/scorings/{run_id}", response_model=ScoringRead, responses=problem_responses(NotFound))
async def get_scoring(run_id: uuid.UUID, session: SessionDep) -> ScoringRead:
    """One scoring run: status, progress, settings, tier thresholds, events published."""
    return await service.get(session, run_id)


@router.get("/tiers", response_model=TierReport)
async def get_tiers(session: SessionDep, currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")]) -> TierReport:
    """Customers and value per tier, from the latest scores."""
    return await service.tiers(session, currency)
