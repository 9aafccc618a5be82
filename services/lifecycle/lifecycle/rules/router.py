import uuid

from fastapi import APIRouter, BackgroundTasks, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionDep
from shared.pagination import Cursor, InvalidCursor, decode, encode
from shared.problems import NotFound, problem_responses

from lifecycle.rules import repository
from lifecycle.rules.schemas import (
    DryRunRequest,
    ReplayRunPage,
    ReplayRunRead,
    RuleSetApplied,
    RuleSetCreate,
    RuleSetPage,
    RuleSetRead,
)
from lifecycle.stages import service as stages
from lifecycle.stages.schemas import RederiveResult, result_of

router = APIRouter(prefix="/v1/lifecycle/rules", tags=["lifecycle rules"])


def _read(v: repository.RuleSetVersion, active_version: int) -> RuleSetRead:
    return RuleSetRead(
        version=v.version,
        parameters=v.parameters,
        description=v.description,
        created_by=v.created_by,
        created_at=v.created_at,
        activated_at=v.activated_at,
        active=v.version == active_version,
    )


@router.get("", response_model=RuleSetRead)
async def get_active_rules(session: SessionDep) -> RuleSetRead:
    """The rule set in force, its parameters and the order its rules are evaluated in."""
    active = await repository.active(session)
    return _read(active, active.version)


def _run(r) -> ReplayRunRead:
    return ReplayRunRead(**{k: r[k] for k in ReplayRunRead.model_fields if k in r}, moved=sum(m["customers"] for m in r["moves"]))


async def _start(session, request: Request, background: BackgroundTasks, version: int) -> ReplayRunRead:
    run_id = await repository.create_run(session, version)
    # Launched once the response's transaction has committed, so the task sees the run and the version.
    background.add_task(request.app.state.replays.launch, run_id)
    return _run(await repository.get_run(session, run_id))


@router.put("", response_model=RuleSetApplied, status_code=202)
@router.post("/versions", response_model=RuleSetApplied, status_code=202)
async def save_rules(body: RuleSetCreate, session: SessionDep, request: Request, background: BackgroundTasks) -> RuleSetApplied:
    """Save a new rule-set version and activate it; every customer is replayed by the run returned (202)."""
    version = await repository.insert(session, body.parameters, body.description, body.created_by)
    saved = await _saved_version(session, version)
    run = await _start(session, request, background, version)
    return RuleSetApplied(rule_set=_read(saved, version), run=run)


@router.post("/dry-run", response_model=RederiveResult)
async def dry_run(body: DryRunRequest, session: SessionDep) -> RederiveResult:
    """How many customers a candidate rule set would move, from → to, without changing anything."""
    return result_of(await stages.dry_run(session, body.parameters))


@router.get("/versions", response_model=RuleSetPage, responses=problem_responses(InvalidCursor))
async def list_versions(session: SessionDep, cursor: Cursor = None, limit: int = Query(20, ge=1, le=100)) -> RuleSetPage:
    """Every saved version, newest first."""
    before = decode(cursor, int)
    active = await repository.active(session)
    items = await repository.page(session, before[0] if before else None, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return RuleSetPage(items=[_read(v, active.version) for v in items], next_cursor=encode(items[-1].version) if more else None)


@router.get("/versions/{version}", response_model=RuleSetRead, responses=problem_responses(NotFound))
async def get_version(version: int, session: SessionDep) -> RuleSetRead:
    """One saved version."""
    found = await _saved_version(session, version)
    return _read(found, (await repository.active(session)).version)


@router.post("/versions/{version}/replay", response_model=RuleSetApplied, status_code=202, responses=problem_responses(NotFound))
async def replay_version(version: int, session: SessionDep, request: Request, background: BackgroundTasks) -> RuleSetApplied:
    """Re-activate a saved version; every customer is replayed through it by the run returned (202)."""
    await _saved_version(session, version)
    await repository.activate(session, version)
    run = await _start(session, request, background, version)
    return RuleSetApplied(rule_set=_read(await _saved_version(session, version), version), run=run)


@router.get("/runs", response_model=ReplayRunPage)
async def list_runs(session: SessionDep, limit: int = Query(20, ge=1, le=100)) -> ReplayRunPage:
    """Replay runs, newest first."""
    return ReplayRunPage(items=[_run(r) for r in await repository.page_runs(session, limit)])


@router.get("/runs/{run_id}", response_model=ReplayRunRead, responses=problem_responses(NotFound))
async def get_run(run_id: uuid.UUID, session: SessionDep) -> ReplayRunRead:
    """A replay run: status and progress (customers replayed, moves so far)."""
    found = await repository.get_run(session, run_id)
    if found is None:
        raise NotFound(f"no replay run {run_id}")
    return _run(found)


@router.post("/versions/{version}/dry-run", response_model=RederiveResult, responses=problem_responses(NotFound))
async def dry_run_version(version: int, session: SessionDep) -> RederiveResult:
    """What replaying a saved version would move, without changing anything."""
    found = await _saved_version(session, version)
    return result_of(await stages.dry_run(session, found.parameters))


async def _saved_version(session: AsyncSession, version: int) -> repository.RuleSetVersion:
    """The saved version, or a 404 (a number beyond int4 cannot be one: never sent to SQL)."""
    found = await repository.get(session, version) if 0 < version < 2**31 else None
    if found is None:
        raise NotFound(f"no rule-set version {version}")
    return found
