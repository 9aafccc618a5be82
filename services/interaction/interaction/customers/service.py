"""Rules of the customer profile: merged ids answer as their survivor, traits as stored, erasure as PII removal."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared import pagination
from shared.contracts import interaction as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import InboxConsumer
from shared.messaging.outbox import Outbox
from shared.messaging.transport import TransportError
from shared.problems import DomainError, NotFound

from interaction.customers import erasure, repository
from interaction.customers.schemas import (
    AttributeRead,
    ConsentRead,
    CustomerExport,
    CustomerPage,
    CustomerProfileRead,
    CustomerSummaryRead,
    ErasureRead,
    IdentifierPage,
    IdentifierRead,
    PurchaseTotalRead,
    ScoreRead,
    TimelineEntryRead,
    TimelinePage,
)
from interaction.identity import repository as identity_repository


class AlreadyErased(DomainError):
    status, slug, title = 409, "customer-erased", "Customer already erased"


class IngestionBehind(DomainError):
    status, slug, title = 503, "ingestion-behind", "Partner events are still being applied"


async def wait_for_partner_ingest(partner_ingest: InboxConsumer, wait_s: float) -> None:
    """An erasure comes after every partner event acknowledged before it. Kafka acknowledges an event to the
    partner before interaction applies it: a `customer.identified` still in the topic, applied after the
    erasure, would make the customer again with the very PII the erasure removed. So the erasure first waits
    until the Kafka door's group committed past everything its topics held at the request (HTTP events are
    applied before they are acknowledged). IngestionBehind (503, nothing erased) if it does not within `wait_s`."""
    try:
        if await partner_ingest.caught_up(wait_s):
            return
    except TransportError as exc:
        raise IngestionBehind(f"cannot tell whether partner events sent before this request were applied: {exc}") from exc
    raise IngestionBehind(
        f"partner events acknowledged before this request are not all applied after {wait_s:g} s; "
        "nothing was erased, try again shortly"
    )


async def resolve_live(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """The customer an id stands for now (merged-away ids resolve to their survivor); 404 if unknown."""
    live = await identity_repository.live_customer(session, customer_id)
    if live is None:
        raise NotFound(f"no customer {customer_id}")
    return live


async def identifiers_page(
    session: AsyncSession, customer_id: uuid.UUID, limit: int, after: tuple[str, str, str] | None
) -> IdentifierPage:
    live = await resolve_live(session, customer_id)
    rows = await repository.identifiers_page(session, live, after, limit + 1)
    page = rows[:limit]
    return IdentifierPage(
        items=[IdentifierRead(kind=r.kind, source=r.source, external_id=r.external_id) for r in page],
        next_cursor=pagination.encode(page[-1].kind, page[-1].source, page[-1].external_id) if len(rows) > limit else None,
    )


async def get_profile(session: AsyncSession, customer_id: uuid.UUID) -> CustomerProfileRead:
    live = await resolve_live(session, customer_id)
    row = await repository.get_customer(session, live)
    parts = await repository.get_profile_parts(session, live)
    totals = [
        PurchaseTotalRead(
            currency=s.currency,
            purchase_count=s.purchase_count,
            total_spend=s.total_spend,
            average_spend=s.average_spend,
            refunded=s.refunded,
            last_purchase_at=s.last_purchase_at,
        )
        for s in parts["spend"]
    ]
    attributes = {
        p.key: AttributeRead(value=p.value, type=p.value_type, source=p.source, updated_at=p.occurred_at)
        for p in parts["properties"]
        if p.kind == "attribute"
    }
    consent = {
        p.key: ConsentRead(granted=bool(p.value), source=p.source, updated_at=p.occurred_at)
        for p in parts["properties"]
        if p.kind == "consent"
    }
    return CustomerProfileRead(
        customer_id=live,
        resolved_from=customer_id if live != customer_id else None,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        erased_at=row.erased_at,
        identifiers=[IdentifierRead(kind=i.kind, source=i.source, external_id=i.external_id) for i in parts["identifiers"]],
        attributes=attributes,
        consent=consent,
        purchase_totals=totals,
        purchase_count=row.purchase_count,
        last_purchase_at=row.last_purchase_at,
        preferred_channel=row.preferred_channel,
        last_touchpoints={k: datetime.fromisoformat(v) for k, v in (row.last_touchpoints or {}).items()},
        latest_nps=ScoreRead(score=row.latest_nps, at=row.latest_nps_at) if row.latest_nps is not None else None,
        latest_csat=ScoreRead(score=row.latest_csat, at=row.latest_csat_at) if row.latest_csat is not None else None,
        partners=list(row.partners or []),
    )


def summary(row: sa.Row) -> CustomerSummaryRead:
    return CustomerSummaryRead(
        customer_id=row.id,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        purchase_count=row.purchase_count,
        last_purchase_at=row.last_purchase_at,
        preferred_channel=row.preferred_channel,
        partners=list(row.partners or []),
    )


async def search(session: AsyncSession, *, limit: int, cursor_token: str | None, **filters) -> CustomerPage:
    after = pagination.decode(cursor_token, uuid.UUID)
    rows = await repository.search(session, after=after[0] if after else None, limit=limit + 1, **filters)
    items = [summary(r) for r in rows[:limit]]
    return CustomerPage(items=items, next_cursor=pagination.encode(items[-1].customer_id) if len(rows) > limit else None)


def entry(row: sa.Row) -> TimelineEntryRead:
    return TimelineEntryRead(
        id=row.id,
        type=row.type,
        occurred_at=row.occurred_at,
        source=row.source,
        event_id=row.event_id,
        channel=row.channel,
        data=row.data,
    )


async def timeline(
    session: AsyncSession, customer_id: uuid.UUID, *, limit: int, cursor_token: str | None, **filters
) -> TimelinePage:
    live = await resolve_live(session, customer_id)
    before = pagination.decode(cursor_token, datetime, uuid.UUID)
    rows = await repository.timeline(session, live, before=before, limit=limit + 1, **filters)
    items = [entry(r) for r in rows[:limit]]
    next_cursor = pagination.encode(items[-1].occurred_at, items[-1].id) if len(rows) > limit else None
    return TimelinePage(items=items, next_cursor=next_cursor)


def _plain(row: sa.Row) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row._mapping.items()}


async def export(session: AsyncSession, customer_id: uuid.UUID) -> CustomerExport:
    profile = await get_profile(session, customer_id)
    rows = await repository.export_rows(session, profile.customer_id)
    history = await repository.timeline(session, profile.customer_id, before=None, limit=None)
    return CustomerExport(
        profile=profile,
        purchases=[_plain(r) for r in rows["purchases"]],
        adjustments=[_plain(r) for r in rows["adjustments"]],
        timeline=[entry(r) for r in history],
        deals=[_plain(r) for r in rows["deals"]],
        merges=[_plain(r) for r in rows["merges"]],
    )


async def erase_customers(session: AsyncSession, live_ids: set[uuid.UUID]) -> list[Envelope]:
    """Erase PII of these live customers (and of those merged into them); the `customer.erased` events to publish."""
    if not live_ids:
        return []
    erased = await erasure.erase(session, sorted(live_ids, key=str))
    now = datetime.now(UTC)
    return [
        Envelope.wrap(contracts.CustomerErased(customer_id=cid, erased_at=now), source=contracts.SOURCE, subject=str(cid))
        for cid in erased
    ]


async def request_erasure(session: AsyncSession, outbox: Outbox, customer_id: uuid.UUID) -> ErasureRead:
    await identity_repository.lock_identity(session)
    live = await resolve_live(session, customer_id)
    row = await repository.get_customer(session, live)
    if row.erased_at is not None:
        raise AlreadyErased(f"customer {live} was erased at {row.erased_at.isoformat()}")
    events = await erase_customers(session, {live})
    await outbox.add(session, INTERACTION_EVENTS, events)
    return ErasureRead(customer_id=live, erased_at=datetime.now(UTC), erased_ids=[uuid.UUID(e.subject) for e in events])
