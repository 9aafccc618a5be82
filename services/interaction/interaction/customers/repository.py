"""Queries on customers, identifiers and purchases. Set-based: one statement per batch, not per event."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.customers.models import customer, customer_identifier, purchase

IdentifierKey = tuple[str, str]  # (source, external id)


async def find_customer_ids(session: AsyncSession, keys: list[IdentifierKey]) -> dict[IdentifierKey, uuid.UUID]:
    if not keys:
        return {}
    t = customer_identifier
    rows = await session.execute(
        sa.select(t.c.source, t.c.external_id, t.c.customer_id).where(sa.tuple_(t.c.source, t.c.external_id).in_(keys))
    )
    return {(r.source, r.external_id): r.customer_id for r in rows}


async def create_customers(session: AsyncSession, first_seen: dict[IdentifierKey, datetime]) -> dict[IdentifierKey, uuid.UUID]:
    """Mint customers for unknown identifiers; returns only those this transaction created.

    A concurrent transaction may claim the same identifier first: its insert wins, ours does nothing, and
    the customer row we minted for it is removed again, so no orphan is left behind.
    """
    if not first_seen:
        return {}
    minted = {key: uuid.uuid4() for key in first_seen}
    await session.execute(insert(customer), [{"id": cid, "first_seen_at": first_seen[key]} for key, cid in minted.items()])
    won = await session.execute(
        insert(customer_identifier)
        .values([{"source": s, "external_id": e, "customer_id": cid} for (s, e), cid in minted.items()])
        .on_conflict_do_nothing()
        .returning(customer_identifier.c.source, customer_identifier.c.external_id)
    )
    created = {(r.source, r.external_id): minted[(r.source, r.external_id)] for r in won}
    lost = [cid for key, cid in minted.items() if key not in created]
    if lost:
        await session.execute(sa.delete(customer).where(customer.c.id.in_(lost)))
    return created


async def insert_purchases(session: AsyncSession, rows: list[dict]) -> set[tuple[str, str]]:
    """Insert purchases, skipping orders already stored; returns the (source, order_id) actually inserted."""
    if not rows:
        return set()
    result = await session.execute(
        insert(purchase).values(rows).on_conflict_do_nothing(index_elements=["source", "order_id"])
        .returning(purchase.c.source, purchase.c.order_id)
    )
    return {(r.source, r.order_id) for r in result}


async def get_profile(session: AsyncSession, customer_id: uuid.UUID) -> dict | None:
    row = (await session.execute(sa.select(customer).where(customer.c.id == customer_id))).first()
    if row is None:
        return None
    identifiers = (await session.execute(
        sa.select(customer_identifier.c.source, customer_identifier.c.external_id)
        .where(customer_identifier.c.customer_id == customer_id).order_by(customer_identifier.c.created_at)
    )).all()
    totals = (await session.execute(
        sa.select(purchase.c.currency, sa.func.count().label("count"), sa.func.sum(purchase.c.amount).label("total"),
                  sa.func.max(purchase.c.occurred_at).label("last"))
        .where(purchase.c.customer_id == customer_id).group_by(purchase.c.currency).order_by(purchase.c.currency)
    )).all()
    return {"customer": row, "identifiers": identifiers, "purchase_totals": totals}
