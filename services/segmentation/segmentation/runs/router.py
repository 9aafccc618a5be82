import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request

from shared.db import SessionDep
from shared.jobs import JobInProgress
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import DomainError, NotFound, problem_responses

from segmentation.rules.repository import latest_run_id
from segmentation.runs import repository
from segmentation.runs.schemas import (
    ClusterRead,
    ClusterSet,
    Comparison,
    PortfolioMatrix,
    Quadrant,
    QuadrantGroup,
    RunCreate,
    RunPage,
    RunRead,
    Transition,
    ValueThreshold,
)
from segmentation.runs.service import NotForKind, RunExecutor, RunNotFound, UnknownScheme, get_run

router = APIRouter(prefix="/v1/segmentation", tags=["runs"])


class NotComparable(DomainError):
    status, slug, title = 422, "runs-not-comparable", "Runs cannot be compared"


class ResultsPruned(DomainError):
    status, slug, title = 409, "results-pruned", "Per-customer results no longer kept"


QUADRANT_ACTIONS = {
    "maintain": ("Maintain: high value, highly engaged — protect the relationship", True, True),
    "invest": ("Invest: high value, low engagement — win their loyalty before they drift", True, False),
    "develop": ("Develop: engaged but low value — grow their spend", False, True),
    "let-go": ("Let go: low value, low engagement — serve at the lowest cost", False, False),
}


def executor(request: Request) -> RunExecutor:
    return request.app.state.run_executor


@router.post(
    "/runs", response_model=RunRead, status_code=202, responses=problem_responses(UnknownScheme, NotForKind, JobInProgress)
)
async def start_run(body: RunCreate, request: Request, session: SessionDep, background: BackgroundTasks) -> RunRead:
    """Start a run (rfm, clustering or tiers); it runs in the background — poll GET /runs/{id}."""
    run = await executor(request).create(
        session, body.kind, scheme=body.scheme, currency=body.currency, as_of=body.as_of, k=body.k
    )
    # Launched once the transaction has committed (the session commits before the response is sent).
    background.add_task(executor(request).launch_committed, run["run_id"])
    return RunRead.model_validate(run)


@router.get("/runs", response_model=RunPage, responses=problem_responses(InvalidCursor))
async def list_runs(
    session: SessionDep, limit: Limit = 50, cursor: Cursor = None, kind: Literal["rfm", "clustering", "tiers"] | None = None
) -> RunPage:
    """Runs, newest first."""
    after = decode(cursor, datetime, uuid.UUID)
    rows = await repository.page(session, kind=kind, before=after, limit=limit + 1)
    items = [RunRead.model_validate(dict(r)) for r in rows[:limit]]
    next_cursor = encode(items[-1].created_at, items[-1].run_id) if len(rows) > limit else None
    return RunPage(items=items, next_cursor=next_cursor)


@router.get("/runs/{run_id}", response_model=RunRead, responses=problem_responses(RunNotFound))
async def read_run(run_id: uuid.UUID, session: SessionDep) -> RunRead:
    """A run: status, progress and, once succeeded, its result (segments with size, revenue share, movement)."""
    return RunRead.model_validate(await get_run(session, run_id))


@router.get("/comparisons", response_model=Comparison, responses=problem_responses(RunNotFound, NotComparable, ResultsPruned))
async def compare_runs(
    session: SessionDep, base_run_id: Annotated[uuid.UUID, Query()], run_id: Annotated[uuid.UUID, Query()]
) -> Comparison:
    """How customers moved between the segments of two runs of the same family (per-customer results are kept
    for the last few runs of each family)."""
    base, other = await get_run(session, base_run_id), await get_run(session, run_id)
    if base["family"] != other["family"] or base["status"] != "succeeded" or other["status"] != "succeeded":
        raise NotComparable("both runs must have succeeded and be of the same kind (and RFM scheme)")
    for r in (base, other):
        kept = await repository.has_results(session, r["run_id"])
        if not kept and r["result"].get("customers"):
            raise ResultsPruned(f"run {r['run_id']} is older than the last few runs whose per-customer results are kept")
    rows = await repository.transitions(session, base["run_id"], other["run_id"])
    transitions = [Transition(from_segment=r.from_key, to_segment=r.to_key, customers=r.n) for r in rows]
    return Comparison(
        base_run_id=base["run_id"],
        run_id=other["run_id"],
        customers_compared=sum(t.customers for t in transitions),
        moved=sum(t.customers for t in transitions if t.from_segment != t.to_segment),
        transitions=transitions,
    )


@router.get("/portfolio-matrix", response_model=PortfolioMatrix, responses=problem_responses(NotFound))
async def portfolio_matrix(session: SessionDep) -> PortfolioMatrix:
    """Value × engagement quadrants from the latest tiers run: whom to invest in, maintain, develop or let go."""
    run_id = await latest_run_id(session, "tiers")
    if run_id is None:
        raise NotFound("no tiers run has succeeded yet; POST /v1/segmentation/runs with kind=tiers")
    run = await get_run(session, run_id)
    by_key = {s["key"]: s for s in run["result"]["segments"]}
    quadrants = []
    for key, (action, high_value, high_engagement) in QUADRANT_ACTIONS.items():
        s = by_key.get(f"portfolio:{key}", {})
        quadrants.append(
            Quadrant(
                key=key,
                name=key.replace("-", " ").capitalize(),
                action=action,
                high_value=high_value,
                high_engagement=high_engagement,
                size=s.get("size", 0),
                revenue_share=s.get("revenue_share", 0.0),
                average_value=s.get("average_value"),
                by_group=[QuadrantGroup(**g) for g in s.get("value_groups", [])],
            )
        )
    result = run["result"]
    return PortfolioMatrix(
        run_id=run_id,
        as_of=run["as_of"],
        value_threshold=result["value_threshold"],
        value_currency=result.get("value_currency"),
        value_basis=result.get("value_basis"),
        value_thresholds=[ValueThreshold(**t) for t in result.get("value_thresholds", [])],
        engagement_threshold=result["engagement_threshold"],
        value_axis=result["value_axis"],
        engagement_axis=result["engagement_axis"],
        quadrants=quadrants,
    )


@router.get("/clusters", response_model=ClusterSet, responses=problem_responses(NotFound))
async def clusters(session: SessionDep) -> ClusterSet:
    """The clusters of the latest clustering run: k, its silhouette score, each cluster described in words."""
    run_id = await latest_run_id(session, "cluster")
    if run_id is None:
        raise NotFound("no clustering run has succeeded yet; POST /v1/segmentation/runs with kind=clustering")
    run = await get_run(session, run_id)
    result = run["result"]
    customers = result.get("customers") or 0
    items = [
        ClusterRead(
            segment_id=s["segment_id"],
            key=s["key"],
            name=s["name"],
            description=s.get("description"),
            size=s["size"],
            share=round(s["size"] / customers, 4) if customers else 0.0,
            revenue_share=s["revenue_share"],
            centroid=s.get("centroid", {}),
            distinguishing=s.get("distinguishing", []),
        )
        for s in result["segments"]
        if s["size"] > 0
    ]
    return ClusterSet(
        run_id=run_id,
        k=result["k"],
        k_fixed=result.get("k_fixed", False),
        k_criterion=result.get("k_criterion", "silhouette score in 2..8"),
        silhouette=result["silhouette"],
        silhouette_by_k={str(k): v for k, v in result["silhouette_by_k"].items()},
        smallest_share_by_k={str(k): v for k, v in result.get("smallest_share_by_k", {}).items()},
        clusters=items,
    )
