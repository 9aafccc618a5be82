import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from shared.db import ReadSessionDep, SessionDep
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import NotFound, problem_responses
from shared.service import OutboxDep

from lifecycle.stages import repository, service
from lifecycle.stages.schemas import (
    CustomerLifecycleRead,
    ManualMove,
    RederiveResult,
    StageState,
    StageStatePage,
    result_of,
)

router = APIRouter(tags=["lifecycle"])


@router.get("/v1/customers/{customer_id}/lifecycle", response_model=CustomerLifecycleRead, responses=problem_responses(NotFound))
async def get_customer_lifecycle(customer_id: uuid.UUID, session: ReadSessionDep) -> CustomerLifecycleRead:
    """A customer's current lifecycle stage and every stage before it (entered, left, duration, trigger)."""
    return await service.read_lifecycle(session, customer_id)


@router.post(
    "/v1/customers/{customer_id}/lifecycle/moves",
    response_model=CustomerLifecycleRead,
    status_code=201,
    responses=problem_responses(NotFound, service.IllegalMove),
)
async def move_customer(
    customer_id: uuid.UUID, body: ManualMove, session: SessionDep, outbox: OutboxDep
) -> CustomerLifecycleRead:
    """Move a customer by hand: only the allowed transitions, always with a reason (kept in the history)."""
    await service.manual_move(session, outbox, customer_id, body.to_stage, body.reason, body.actor)
    return await service.read_lifecycle(session, customer_id)


@router.post("/v1/lifecycle/sweeps", response_model=RederiveResult)
async def run_sweep(session: SessionDep, outbox: OutboxDep) -> RederiveResult:
    """Apply the clock rules now: churn the customers whose inactivity window has run out (also runs periodically)."""
    return result_of(await service.sweep(session, outbox))


@router.get("/v1/lifecycle/stages/state", response_model=StageStatePage, responses=problem_responses(InvalidCursor))
async def stage_state(
    session: SessionDep,
    limit: Limit = 500,
    cursor: Cursor = None,
    customer_id: Annotated[
        list[uuid.UUID] | None, Query(max_length=100, description=("Only these customers (one page)."))
    ] = None,
) -> StageStatePage:
    """Every customer's current stage with its version, in customer id order: the state every copy of
    `stage.changed` must converge to (what `python -m <service> reconcile` compares the copies with)."""
    after = decode(cursor, uuid.UUID)
    rows = await repository.stage_states(session, after=after[0] if after else None, limit=limit, customer_ids=customer_id)
    return StageStatePage(
        items=[StageState(customer_id=r.customer_id, stage=r.stage, changed_at=r.changed_at, version=r.version) for r in rows],
        next_cursor=encode(rows[-1].customer_id) if len(rows) == limit else None,
    )
