import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from shared import pagination
from shared.db import SessionDep
from shared.pagination import Cursor
from shared.problems import DomainError, NotFound, problem_responses
from shared.validation import NO_NUL

from interaction.customers.service import entry, summary
from interaction.partners import repository
from interaction.partners.schemas import (
    PartnerCreate,
    PartnerCustomerPage,
    PartnerFeedback,
    PartnerFigures,
    PartnerKind,
    PartnerPage,
    PartnerRead,
    PartnerRevenue,
    PartnerSegmentShare,
    PartnerTouchpointPage,
    PartnerUpdate,
)

router = APIRouter(prefix="/v1/partners", tags=["partners"])
PartnerId = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
Limit = Annotated[int, Query(ge=1, le=200)]


class PartnerExists(DomainError):
    status, slug, title = 409, "partner-exists", "Partner already registered"


def _read(row) -> PartnerRead:
    return PartnerRead(
        id=row.id,
        name=row.name,
        kind=row.kind,
        auto_registered=row.auto_registered,
        trust_contact_linking=row.trust_contact_linking,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _existing(session, partner_id: str):
    row = await repository.get(session, partner_id)
    if row is None:
        raise NotFound(f"no partner {partner_id!r}")
    return row


@router.post("", response_model=PartnerRead, status_code=status.HTTP_201_CREATED, responses=problem_responses(PartnerExists))
async def create_partner(body: PartnerCreate, session: SessionDep) -> PartnerRead:
    """Register a partner (or classify one that was auto-registered from its events)."""
    row = await repository.upsert(session, body.id, body.name, body.kind.value, body.trust_contact_linking)
    if row is None:
        raise PartnerExists(f"partner {body.id!r} is already registered; PATCH it to change it")
    return _read(row)


@router.patch("/{partner_id}", response_model=PartnerRead, responses=problem_responses(NotFound))
async def update_partner(partner_id: PartnerId, body: PartnerUpdate, session: SessionDep) -> PartnerRead:
    """Change a partner's name, kind or trust (`trust_contact_linking`); applies to the events that follow."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True, mode="json")
    row = await repository.update(session, partner_id, changes)
    if row is None:
        raise NotFound(f"no partner {partner_id!r}")
    return _read(row)


@router.get("", response_model=PartnerPage, responses=problem_responses(pagination.InvalidCursor))
async def list_partners(
    session: SessionDep,
    kind: PartnerKind | None = None,
    limit: Limit = 50,
    cursor_token: Annotated[Cursor, Query(alias="cursor")] = None,
) -> PartnerPage:
    """Partners, by id; filter by kind."""
    after = pagination.decode(cursor_token, str)
    rows = await repository.page(session, after=after[0] if after else None, limit=limit + 1, kind=kind.value if kind else None)
    items = [_read(r) for r in rows[:limit]]
    return PartnerPage(items=items, next_cursor=pagination.encode(items[-1].id) if len(rows) > limit else None)


@router.get("/{partner_id}", response_model=PartnerRead, responses=problem_responses(NotFound))
async def get_partner(partner_id: PartnerId, session: SessionDep) -> PartnerRead:
    """One partner."""
    return _read(await _existing(session, partner_id))


@router.get(
    "/{partner_id}/customers", response_model=PartnerCustomerPage, responses=problem_responses(NotFound, pagination.InvalidCursor)
)
async def partner_customers(
    partner_id: PartnerId, session: SessionDep, limit: Limit = 50, cursor_token: Annotated[Cursor, Query(alias="cursor")] = None
) -> PartnerCustomerPage:
    """Customers this partner's events mention, by id."""
    await _existing(session, partner_id)
    after = pagination.decode(cursor_token, uuid.UUID)
    rows = await repository.customers(session, partner_id, after=after[0] if after else None, limit=limit + 1)
    items = [summary(r) for r in rows[:limit]]
    return PartnerCustomerPage(items=items, next_cursor=pagination.encode(items[-1].customer_id) if len(rows) > limit else None)


@router.get(
    "/{partner_id}/touchpoints",
    response_model=PartnerTouchpointPage,
    responses=problem_responses(NotFound, pagination.InvalidCursor),
)
async def partner_touchpoints(
    partner_id: PartnerId, session: SessionDep, limit: Limit = 50, cursor_token: Annotated[Cursor, Query(alias="cursor")] = None
) -> PartnerTouchpointPage:
    """Touchpoints (interaction.logged) this partner contributed, newest first."""
    await _existing(session, partner_id)
    before = pagination.decode(cursor_token, datetime, uuid.UUID)
    rows = await repository.touchpoints(session, partner_id, before=before, limit=limit + 1)
    items = [entry(r) for r in rows[:limit]]
    next_cursor = pagination.encode(items[-1].occurred_at, items[-1].id) if len(rows) > limit else None
    return PartnerTouchpointPage(items=items, next_cursor=next_cursor)


@router.get("/{partner_id}/figures", response_model=PartnerFigures, responses=problem_responses(NotFound))
async def partner_figures(partner_id: PartnerId, session: SessionDep) -> PartnerFigures:
    """What the partner contributes: customers brought and reached, revenue per currency, touchpoints, feedback
    (NPS, CSAT) and its share of each segment."""
    await _existing(session, partner_id)
    f = await repository.figures(session, partner_id)
    t, fb = f["totals"], f["feedback"]
    return PartnerFigures(
        partner_id=partner_id,
        customers_brought=t.customers_brought,
        customers_reached=t.customers_reached,
        revenue=[PartnerRevenue(currency=r.currency, orders=r.orders, revenue=r.revenue) for r in f["revenue"]],
        touchpoints=t.touchpoints,
        feedback=PartnerFeedback(
            responses=t.responses,
            nps_responses=fb.nps_responses,
            nps=round(float(fb.nps), 1) if fb.nps is not None else None,
            mean_nps=round(float(fb.mean_nps), 2) if fb.mean_nps is not None else None,
            csat_responses=fb.csat_responses,
            mean_csat=round(float(fb.mean_csat), 2) if fb.mean_csat is not None else None,
        ),
        segments=[
            PartnerSegmentShare(
                segment_key=r.segment_key,
                segment_name=r.segment_name,
                members=r.members,
                brought=r.brought,
                reached=r.reached,
                share=round(r.brought / r.members, 4),
            )
            for r in f["segments"]
        ],
    )
