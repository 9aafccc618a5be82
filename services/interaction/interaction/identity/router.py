import uuid
from datetime import datetime

from fastapi import APIRouter, status

from shared import pagination
from shared.db import SessionDep
from shared.problems import NotFound, problem_responses
from shared.service import OutboxDep

from interaction.identity import service
from interaction.identity.schemas import MergeCreate, MergePage, MergeRead, UnmergeRead

router = APIRouter(prefix="/v1", tags=["identity"])


@router.get(
    "/customers/{customer_id}/merges", response_model=MergePage, responses=problem_responses(NotFound, pagination.InvalidCursor)
)
async def list_merges(
    customer_id: uuid.UUID, session: SessionDep, limit: pagination.Limit = 50, cursor: pagination.Cursor = None
) -> MergePage:
    """The merge audit of a customer: merges it survived and the merge that folded it away, oldest first."""
    return await service.merges_of(session, customer_id, limit, pagination.decode(cursor, datetime, uuid.UUID))


@router.post(
    "/merges",
    response_model=MergeRead,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(NotFound, service.AlreadyOneCustomer, service.CustomerErased),
)
async def merge_customers(body: MergeCreate, outbox: OutboxDep, session: SessionDep) -> MergeRead:
    """Merge two customers by hand (the oldest survives); audited and undoable like automatic merges."""
    return await service.merge_by_hand(session, outbox, body)


@router.get("/merges/{merge_id}", response_model=MergeRead, responses=problem_responses(NotFound))
async def get_merge(merge_id: uuid.UUID, session: SessionDep) -> MergeRead:
    """One audited merge."""
    return await service.get_merge(session, merge_id)


@router.post(
    "/merges/{merge_id}/undo",
    response_model=UnmergeRead,
    responses=problem_responses(NotFound, service.MergeAlreadyUndone, service.CustomerErased),
)
async def undo_merge(merge_id: uuid.UUID, outbox: OutboxDep, session: SessionDep) -> UnmergeRead:
    """Unmerge: the merged customer exists again with its identifiers, purchases and touchpoints.

    Publishes `customer.unmerged`."""
    return await service.undo_merge(session, outbox, merge_id)
