import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, AwareDatetime, StringConstraints

from shared import pagination
from shared.contracts.partner import PARTNER_EVENT_TYPES
from shared.db import ReadSessionDep, SessionDep
from shared.pagination import Cursor
from shared.problems import DomainError, NotFound, problem_responses
from shared.service import OutboxDep
from shared.validation import NO_NUL

from interaction.customers import service
from interaction.customers.published import profile_states
from interaction.customers.schemas import (
    CustomerExport,
    CustomerPage,
    CustomerProfileRead,
    ErasureRead,
    IdentifierPage,
    ProfileStatePage,
    TimelinePage,
)
from interaction.identity.normalise import normalise_email, normalise_phone
from interaction.settings import SettingsDep

router = APIRouter(prefix="/v1/customers", tags=["customers"])
# A fixed type, or a registered custom one (interaction/event_types): the name's shape, not a closed list.
EventType = Annotated[str, StringConstraints(max_length=100, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Text = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]


def _storable(value: datetime) -> datetime:
    # Far-off times with an offset overflow on the way to UTC: outside 1900–2200 a filter is a 422, not a 500.
    if not datetime(1900, 1, 1, tzinfo=UTC) <= value <= datetime(2200, 1, 1, tzinfo=UTC):
        raise ValueError("must lie between 1900 and 2200")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_storable)]


class BadFilter(DomainError):
    status, slug, title = 422, "bad-filter", "Invalid filter"


@router.get("", response_model=CustomerPage, responses=problem_responses(pagination.InvalidCursor, BadFilter))
async def search_customers(
    session: SessionDep,
    email: Annotated[str | None, Query(max_length=320, pattern=NO_NUL, description="Matched after normalisation.")] = None,
    phone: Annotated[str | None, Query(max_length=40, pattern=NO_NUL, description="With country code; matched as E.164.")] = None,
    source: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="A partner id; with `external_id`, that partner's customer id.",
        ),
    ] = None,
    external_id: Text = None,
    attribute: Annotated[
        str | None, Query(max_length=300, pattern=r"^[^=\x00]{1,100}=[^\x00]*$", description="`key=value`, exact match.")
    ] = None,
    partner: Text = None,
    min_purchase_count: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    max_purchase_count: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="Required with the spend range.")] = None,
    min_total_spend: Annotated[Decimal | None, Query(ge=0, le=10**13)] = None,
    max_total_spend: Annotated[Decimal | None, Query(ge=0, le=10**13)] = None,
    last_seen_after: Instant | None = None,
    last_seen_before: Instant | None = None,
    preferred_channel: Annotated[str | None, Query(max_length=40, pattern=NO_NUL)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> CustomerPage:
    """Search customers by identifier, attribute, partner and trait ranges; cursor-paginated by id."""
    if (min_total_spend is not None or max_total_spend is not None) and currency is None:
        raise BadFilter("a spend range needs `currency`: money is never compared across currencies")
    if external_id is not None and source is None:
        raise BadFilter("`external_id` needs `source`")
    try:
        email = normalise_email(email) if email is not None else None
        phone = normalise_phone(phone) if phone is not None else None
    except ValueError as exc:
        raise BadFilter(str(exc).replace("identifiers.", "")) from None
    attr = tuple(attribute.split("=", 1)) if attribute is not None else None
    return await service.search(
        session,
        limit=limit,
        cursor_token=cursor,
        email=email,
        phone=phone,
        source=source,
        external_id=external_id,
        attribute=attr,
        partner=partner,
        min_purchase_count=min_purchase_count,
        max_purchase_count=max_purchase_count,
        currency=currency,
        min_total_spend=min_total_spend,
        max_total_spend=max_total_spend,
        last_seen_after=last_seen_after,
        last_seen_before=last_seen_before,
        preferred_channel=preferred_channel,
    )


@router.get("/profiles/state", response_model=ProfileStatePage, responses=problem_responses(pagination.InvalidCursor))
async def profile_state(
    session: ReadSessionDep,
    limit: pagination.Limit = 500,
    cursor: Cursor = None,
    customer_id: Annotated[list[uuid.UUID] | None, Query(max_length=100, description="Only these customers (one page).")] = None,
) -> ProfileStatePage:
    """Every live customer's published profile (as `customer.updated` carries it) with its version, in customer id
    order: the state every copy of `customer.updated` must converge to (what `python -m segmentation reconcile`
    compares its copy with)."""
    after = pagination.decode(cursor, uuid.UUID)
    items = await profile_states(session, after=after[0] if after else None, limit=limit, customer_ids=customer_id)
    return ProfileStatePage(items=items, next_cursor=pagination.encode(items[-1].customer_id) if len(items) == limit else None)


@router.get("/{customer_id}", response_model=CustomerProfileRead, responses=problem_responses(NotFound))
async def get_customer(customer_id: uuid.UUID, session: ReadSessionDep) -> CustomerProfileRead:
    """A customer's profile: identifiers, attributes, consent, computed traits. A merged-away id answers as its survivor."""
    return await service.get_profile(session, customer_id)


@router.get(
    "/{customer_id}/identifiers", response_model=IdentifierPage, responses=problem_responses(NotFound, pagination.InvalidCursor)
)
async def get_identifiers(
    customer_id: uuid.UUID, session: SessionDep, limit: pagination.Limit = 50, cursor: pagination.Cursor = None
) -> IdentifierPage:
    """The identifiers the customer is known by (of the survivor, for a merged-away id), by kind, source and id."""
    return await service.identifiers_page(session, customer_id, limit, pagination.decode(cursor, str, str, str))


@router.get(
    "/{customer_id}/timeline", response_model=TimelinePage, responses=problem_responses(NotFound, pagination.InvalidCursor)
)
async def get_timeline(
    customer_id: uuid.UUID,
    session: SessionDep,
    type: Annotated[
        list[EventType] | None,
        Query(description="Event types to include: fixed or registered custom types.", examples=sorted(PARTNER_EVENT_TYPES)),
    ] = None,
    channel: Annotated[str | None, Query(max_length=40, pattern=NO_NUL)] = None,
    partner: Text = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TimelinePage:
    """The customer's events, newest first (by when they happened, not when they arrived)."""
    return await service.timeline(
        session,
        customer_id,
        limit=limit,
        cursor_token=cursor,
        types=type,
        channel=channel,
        partner=partner,
        since=since,
        until=until,
    )


@router.get("/{customer_id}/export", response_model=CustomerExport, responses=problem_responses(NotFound))
async def export_customer(customer_id: uuid.UUID, session: SessionDep) -> CustomerExport:
    """Everything held about the customer (data portability, R8)."""
    return await service.export(session, customer_id)


@router.post(
    "/{customer_id}/erasure",
    response_model=ErasureRead,
    responses=problem_responses(NotFound, service.AlreadyErased, service.IngestionBehind),
)
async def erase_customer(
    customer_id: uuid.UUID, outbox: OutboxDep, session: SessionDep, settings: SettingsDep, request: Request
) -> ErasureRead:
    """Erase the customer's PII (identifiers, attributes, free text); anonymous facts stay; publishes `customer.erased`.

    It first waits (up to a few seconds) until every partner event Kafka acknowledged before the request is
    applied, so none of them brings the PII back after it; 503 `ingestion-behind` (nothing erased) if they are not."""
    await service.wait_for_partner_ingest(request.app.state.partner_ingest, settings.erasure_ingest_wait_s)
    return await service.request_erasure(session, outbox, customer_id)
