"""Queries on customers, identifiers and purchases. Set-based: one statement per batch, not per event."""

import uuid
from datetime import datetime

import sqlalchemy as sa
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


# Fixed-shape statements (arrays, not VALUES lists): compiled and prepared once whatever the batch size.
INSERT_CUSTOMERS = sa.text("""
INSERT INTO interaction.customer (id, first_seen_at)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:first_seen AS timestamptz[]))
""")
CLAIM_IDENTIFIERS = sa.text("""
INSERT INTO interaction.customer_identifier (source, external_id, customer_id)
SELECT * FROM unnest(CAST(:sources AS text[]), CAST(:external_ids AS text[]), CAST(:customer_ids AS uuid[]))
ON CONFLICT DO NOTHING
RETURNING source, external_id
""")
INSERT_PURCHASES = sa.text("""
INSERT INTO interaction.purchase (id, customer_id, source, order_id, amount, currency, channel, occurred_at, event_id)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:sources AS text[]),
                     CAST(:order_ids AS text[]), CAST(:amounts AS numeric[]), CAST(:currencies AS text[]),
                     CAST(:channels AS text[]), CAST(:occurred AS timestamptz[]), CAST(:event_ids AS text[]))
ON CONFLICT (source, order_id) DO NOTHING
RETURNING source, order_id
""")


async def create_customers(session: AsyncSession, first_seen: dict[IdentifierKey, datetime]) -> dict[IdentifierKey, uuid.UUID]:
    """Mint customers for unknown identifiers; returns only those this transaction created.

    A concurrent transaction may claim the same identifier first: its insert wins, ours does nothing, and
    the customer row we minted for it is removed again, so no orphan is left behind.
    """
    if not first_seen:
        return {}
    minted = {key: uuid.uuid4() for key in first_seen}
    await session.execute(INSERT_CUSTOMERS, {"ids": list(minted.values()), "first_seen": list(first_seen.values())})
    won = await session.execute(CLAIM_IDENTIFIERS, {
        "sources": [s for s, _ in minted], "external_ids": [e for _, e in minted], "customer_ids": list(minted.values()),
    })
    created = {(r.source, r.external_id): minted[(r.source, r.external_id)] for r in won}
    lost = [cid for key, cid in minted.items() if key not in created]
    if lost:
        await session.execute(sa.delete(customer).where(customer.c.id.in_(lost)))
    return created


async def insert_purchases(session: AsyncSession, rows: list[dict]) -> set[tuple[str, str]]:
    """Insert purchases, skipping orders already stored; returns the (source, order_id) actually inserted."""
    if not rows:
        return set()
    columns = {"ids": "id", "customer_ids": "customer_id", "sources": "source", "order_ids": "order_id",
               "amounts": "amount", "currencies": "currency", "channels": "channel", "occurred": "occurred_at",
               "event_ids": "event_id"}
    result = await session.execute(INSERT_PURCHASES, {param: [r[col] for r in rows] for param, col in columns.items()})
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
