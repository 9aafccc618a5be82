"""Partner registry queries; per partner, its customers and touchpoints come from the timeline."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.customers.models import activity, customer, partner


async def get(session: AsyncSession, partner_id: str) -> sa.Row | None:
    return (await session.execute(sa.select(partner).where(partner.c.id == partner_id))).first()


async def upsert(session: AsyncSession, partner_id: str, name: str, kind: str, trust_contact_linking: bool) -> sa.Row:
    """Create, or claim an auto-registered entry; None when the partner is already registered."""
    stmt = sa.text("""
        INSERT INTO interaction.partner (id, name, kind, auto_registered, trust_contact_linking)
        VALUES (:id, :name, :kind, false, :trust)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, auto_registered = false,
                                       trust_contact_linking = EXCLUDED.trust_contact_linking, updated_at = now()
        WHERE partner.auto_registered
        RETURNING *
    """)
    return (await session.execute(stmt, {"id": partner_id, "name": name, "kind": kind,
                                         "trust": trust_contact_linking})).first()


async def update(session: AsyncSession, partner_id: str, changes: dict[str, object]) -> sa.Row | None:
    """Change the given columns of a partner (registering it if it was auto-registered); None if unknown."""
    stmt = (sa.update(partner).where(partner.c.id == partner_id)
            .values(**changes, auto_registered=False, updated_at=sa.func.now()).returning(*partner.c))
    return (await session.execute(stmt)).first()


async def page(session: AsyncSession, *, after: str | None, limit: int, kind: str | None) -> list[sa.Row]:
    query = sa.select(partner)
    if kind is not None:
        query = query.where(partner.c.kind == kind)
    if after is not None:
        query = query.where(partner.c.id > after)
    return (await session.execute(query.order_by(partner.c.id).limit(limit))).all()


async def customers(session: AsyncSession, partner_id: str, *, after: uuid.UUID | None, limit: int) -> list[sa.Row]:
    touched = sa.select(activity.c.customer_id).where(activity.c.source == partner_id)
    query = sa.select(customer).where(customer.c.id.in_(touched))
    if after is not None:
        query = query.where(customer.c.id > after)
    return (await session.execute(query.order_by(customer.c.id).limit(limit))).all()


async def touchpoints(session: AsyncSession, partner_id: str, *, before: tuple[datetime, uuid.UUID] | None,
                      limit: int) -> list[sa.Row]:
    a = activity
    query = sa.select(a).where(a.c.source == partner_id, a.c.type == "interaction.logged")
    if before is not None:
        query = query.where(sa.tuple_(a.c.occurred_at, a.c.id) < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
    return (await session.execute(query.order_by(a.c.occurred_at.desc(), a.c.id.desc()).limit(limit))).all()
