import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shared.db import SessionDep
from shared.internal_auth import CALLER_SCOPE_KEY
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import DomainError, NotFound, problem_responses
from shared.service import OutboxDep

from clv.propositions import repository, service
from clv.propositions.schemas import (
    CorrectionCreate,
    CorrectionPage,
    CorrectionRead,
    DeliveryCreate,
    DeliveryPage,
    DeliveryRead,
    GapGroupBy,
    GapReport,
    NextBest,
    OutcomeCreate,
    Performance,
    PropositionCreate,
    PropositionKind,
    PropositionPage,
    PropositionRead,
    PropositionUpdate,
)
from clv.transaction_summary.repository import resolve_customer

router = APIRouter(tags=["value propositions"])


@router.post("/v1/propositions", status_code=201, response_model=PropositionRead)
async def create_proposition(body: PropositionCreate, response: Response, session: SessionDep) -> PropositionRead:
    """Add a proposition to the catalogue."""
    created = await service.create(session, body)
    response.headers["Location"] = f"/v1/propositions/{created.id}"
    return created


@router.get("/v1/propositions", response_model=PropositionPage, responses=problem_responses(InvalidCursor))
async def list_propositions(
    session: SessionDep, limit: Limit = 50, cursor: Cursor = None, active: bool | None = None, kind: PropositionKind | None = None
) -> PropositionPage:
    """The catalogue, filtered by state and kind."""
    after = decode(cursor, uuid.UUID)
    rows = await repository.list_propositions(
        session, active=active, kind=kind, after=after[0] if after else None, limit=limit + 1
    )
    page = rows[:limit]
    return PropositionPage(
        items=[service.to_read(r) for r in page], next_cursor=encode(page[-1].id) if len(rows) > limit else None
    )


@router.get("/v1/propositions/{proposition_id}", response_model=PropositionRead, responses=problem_responses(NotFound))
async def get_proposition(proposition_id: uuid.UUID, session: SessionDep) -> PropositionRead:
    """One proposition."""
    return service.to_read(await service.get(session, proposition_id))


@router.patch(
    "/v1/propositions/{proposition_id}", response_model=PropositionRead, responses=problem_responses(NotFound, DomainError)
)
async def update_proposition(proposition_id: uuid.UUID, body: PropositionUpdate, session: SessionDep) -> PropositionRead:
    """Change a proposition (targets, limits, cost, activation)."""
    return await service.update(session, proposition_id, body)


@router.delete("/v1/propositions/{proposition_id}", status_code=204, responses=problem_responses(NotFound))
async def retire_proposition(proposition_id: uuid.UUID, session: SessionDep) -> Response:
    """Retire a proposition: it stays for its history and performance, and is no longer offered."""
    if await repository.update_proposition(session, proposition_id, {"active": False}) is None:
        raise NotFound(f"no proposition {proposition_id}")
    return Response(status_code=204)


@router.get("/v1/propositions/{proposition_id}/performance", response_model=Performance, responses=problem_responses(NotFound))
async def get_performance(proposition_id: uuid.UUID, session: SessionDep) -> Performance:
    """Uptake and incremental revenue against the holdout group."""
    return await service.performance(session, proposition_id)


@router.get("/v1/propositions/deliveries/{delivery_id}", response_model=DeliveryRead, responses=problem_responses(NotFound))
async def get_delivery(delivery_id: uuid.UUID, session: SessionDep) -> DeliveryRead:
    """One delivery with its outcome and how many times that outcome was corrected."""
    return DeliveryRead.model_validate((await service.get_delivery(session, delivery_id))._mapping)


@router.post(
    "/v1/propositions/deliveries/{delivery_id}/outcome",
    response_model=DeliveryRead,
    responses=problem_responses(NotFound, service.OutcomeConflict),
)
async def record_outcome(delivery_id: uuid.UUID, body: OutcomeCreate, session: SessionDep) -> DeliveryRead:
    """Record the customer's answer to a delivery: accepted, declined or ignored.

    Write-once: the same answer again is idempotent (200, unchanged); a different one is a 409 `outcome-conflict`
    (change it through `/outcome/corrections`, which keeps who and why)."""
    return await service.record_outcome(session, delivery_id, body.outcome)


@router.post(
    "/v1/propositions/deliveries/{delivery_id}/outcome/corrections",
    status_code=201,
    response_model=CorrectionRead,
    responses=problem_responses(NotFound, service.OutcomeConflict),
)
async def correct_outcome(
    delivery_id: uuid.UUID, body: CorrectionCreate, request: Request, session: SessionDep
) -> CorrectionRead:
    """Correct a recorded outcome, audited: the caller (as the gateway vouched for it), the reason, from and to."""
    caller = request.scope.get(CALLER_SCOPE_KEY)
    corrected_by = f"{caller.subject} ({caller.role})" if caller is not None else "unknown"
    return await service.correct_outcome(session, delivery_id, body, corrected_by)


@router.get(
    "/v1/propositions/deliveries/{delivery_id}/outcome/corrections",
    response_model=CorrectionPage,
    responses=problem_responses(NotFound, InvalidCursor),
)
async def list_corrections(
    delivery_id: uuid.UUID, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> CorrectionPage:
    """The audit of a delivery's outcome corrections, oldest first."""
    after = decode(cursor, datetime, uuid.UUID)
    await service.get_delivery(session, delivery_id)
    rows = await repository.corrections(session, delivery_id, after, limit + 1)
    page = rows[:limit]
    return CorrectionPage(
        items=[CorrectionRead.model_validate(r._mapping) for r in page],
        next_cursor=encode(page[-1].corrected_at, page[-1].id) if len(rows) > limit else None,
    )


@router.get("/v1/customers/{customer_id}/propositions/next-best", response_model=NextBest, responses=problem_responses(NotFound))
async def next_best(
    customer_id: uuid.UUID, session: SessionDep, currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")]
) -> NextBest:
    """The proposition with the highest expected value gain the customer is eligible for, and why."""
    return await service.next_best(session, customer_id, currency)


@router.post(
    "/v1/customers/{customer_id}/propositions/deliveries",
    status_code=201,
    response_model=DeliveryRead,
    responses=problem_responses(NotFound, service.NotEligible),
)
async def deliver(customer_id: uuid.UUID, body: DeliveryCreate, outbox: OutboxDep, session: SessionDep) -> DeliveryRead:
    """Deliver a proposition (or record the customer in its holdout group); publishes proposition.delivered."""
    return await service.deliver(session, outbox, customer_id, body)


@router.get(
    "/v1/customers/{customer_id}/propositions/deliveries", response_model=DeliveryPage, responses=problem_responses(InvalidCursor)
)
async def list_deliveries(customer_id: uuid.UUID, session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> DeliveryPage:
    """What was delivered to (or held out for) a customer, newest first, with outcomes."""
    before = decode(cursor, datetime, uuid.UUID)
    resolved = await resolve_customer(session, customer_id)
    rows = await repository.customer_deliveries(session, resolved, before, limit + 1)
    page = rows[:limit]
    return DeliveryPage(
        items=[DeliveryRead.model_validate(r._mapping) for r in page],
        next_cursor=encode(page[-1].delivered_at, page[-1].id) if len(rows) > limit else None,
    )


@router.get("/v1/value/gap", response_model=GapReport)
async def value_gap(
    session: SessionDep,
    group_by: GapGroupBy = GapGroupBy.SEGMENT,
    cost_per_point: Annotated[
        Decimal,
        Query(
            ge=0, le=1_000_000, max_digits=14, decimal_places=4, description="Cost of one point of perceived value per response."
        ),
    ] = Decimal("1.00"),
) -> GapReport:
    """Perceived against required value from feedback, per segment or proposition, with the cost of closing the gap."""
    return await service.value_gap(session, group_by.value, cost_per_point)
