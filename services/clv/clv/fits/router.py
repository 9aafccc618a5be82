import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from shared.db import SessionDep
from shared.jobs import JobInProgress
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import NotFound, problem_responses

from clv.fits import repository, service
from clv.fits.schemas import (
    Comparison,
    FitCreate,
    FitPage,
    FitRead,
    JobStatus,
    PredictionRequest,
    PredictionResponse,
    TransactionModelName,
)
from clv.settings import SettingsDep

router = APIRouter(prefix="/v1/value/models", tags=["value models"])
CurrencyQuery = Annotated[str, Query(pattern=r"^[A-Z]{3}$", examples=["EUR"])]


@router.post(
    "/fits", status_code=202, response_model=FitRead, responses=problem_responses(service.InvalidFitRequest, JobInProgress)
)
async def create_fit(
    body: FitCreate, request: Request, response: Response, session: SessionDep, settings: SettingsDep, background: BackgroundTasks
) -> FitRead:
    """Start fitting a model version; poll the returned fit for status and progress."""
    row = await service.create_fit(session, body, settings)
    # Launched once the transaction has committed (the session commits before the response is sent).
    background.add_task(service.launch_fit, request.app, row.id)
    response.headers["Location"] = f"/v1/value/models/fits/{row.id}"
    return service.to_read(row)


@router.get("/fits", response_model=FitPage, responses=problem_responses(InvalidCursor))
async def list_fits(
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    model: TransactionModelName | None = None,
    status: JobStatus | None = None,
) -> FitPage:
    """Model versions, newest first."""
    before = decode(cursor, int)
    rows = await repository.list_fits(
        session, currency=currency, model=model, status=status, before_version=before[0] if before else None, limit=limit + 1
    )
    page = rows[:limit]
    return FitPage(items=[service.to_read(r) for r in page], next_cursor=encode(page[-1].version) if len(rows) > limit else None)


@router.get("/fits/{fit_id}", response_model=FitRead, responses=problem_responses(NotFound))
async def get_fit(fit_id: uuid.UUID, session: SessionDep) -> FitRead:
    """One fit: status, progress, parameters, fit statistics and holdout diagnostics."""
    return await service.get(session, fit_id)


@router.get("/comparison", response_model=Comparison, responses=problem_responses(NotFound))
async def compare_models(
    session: SessionDep,
    currency: CurrencyQuery,
    fit_id: Annotated[list[uuid.UUID], Query(max_length=20)] = [],  # noqa: B006 - FastAPI copies a default per request
) -> Comparison:
    """Compare fits by log-likelihood, AIC/BIC and holdout error (default: the newest fit of each model)."""
    return await service.compare(session, currency, fit_id)


@router.post(
    "/fits/{fit_id}/predictions",
    response_model=PredictionResponse,
    responses=problem_responses(NotFound, service.FitNotUsable, service.InvalidPredictionInput),
)
async def predict(fit_id: uuid.UUID, body: PredictionRequest, session: SessionDep) -> PredictionResponse:
    """What-if: P(alive), expected purchases and spend for given histories from a usable fit."""
    return await service.predict(session, fit_id, body)
