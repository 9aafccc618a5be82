"""Partner registry queries; per partner, its customers and touchpoints come from the timeline."""

import uuid
from datetime import datetime
from typing import TypedDict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.customers.models import activity, customer, partner


async def get(session: AsyncSession, partner_id: str) -> sa.Row | None:
    return (await session.execute(sa.select(partner).where(partner.c.id == partner_id))).first()


async def upsert(session: AsyncSession, partner_id: str, name: str, kind: str, trust_contact_linking: bool) -> sa.Row | None:
    """Create, or claim an auto-registered entry; None when the partner is already registered."""
    stmt = sa.text("""
        INSERT INTO interaction.partner (id, name, kind, auto_registered, trust_contact_linking)
        VALUES (:id, :name, :kind, false, :trust)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, auto_registered = false,
                                       trust_contact_linking = EXCLUDED.trust_contact_linking, updated_at = now()
        WHERE partner.auto_registered
        RETURNING *
    """)
    return (await session.execute(stmt, {"id": partner_id, "name": name, "kind": kind, "trust": trust_contact_linking})).first()


async def update(session: AsyncSession, partner_id: str, changes: dict[str, object]) -> sa.Row | None:
    """Change the given columns of a partner (registering it if it was auto-registered); None if unknown."""
    stmt = (
        sa.update(partner)
        .where(partner.c.id == partner_id)
        .values(**changes, auto_registered=False, updated_at=sa.func.now())
        .returning(*partner.c)
    )
    return (await session.execute(stmt)).first()


async def page(session: AsyncSession, *, after: str | None, limit: int, kind: str | None) -> list[sa.Row]:
    query = sa.select(partner)
    if kind is not None:
        query = query.where(partner.c.kind == kind)
    if after is not None:
        query = query.where(partner.c.id > after)
    return list((await session.execute(query.order_by(partner.c.id).limit(limit))).all())


async def customers(session: AsyncSession, partner_id: str, *, after: uuid.UUID | None, limit: int) -> list[sa.Row]:
    touched = sa.select(activity.c.customer_id).where(activity.c.source == partner_id)
    query = sa.select(customer).where(customer.c.id.in_(touched))
    if after is not None:
        query = query.where(customer.c.id > after)
    return list((await session.execute(query.order_by(customer.c.id).limit(limit))).all())


async def touchpoints(
    session: AsyncSession, partner_id: str, *, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.Row]:
    a = activity
    query = sa.select(a).where(a.c.source == partner_id, a.c.type == "interaction.logged")
    if before is not None:
        query = query.where(sa.tuple_(a.c.occurred_at, a.c.id) < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
    return list((await session.execute(query.order_by(a.c.occurred_at.desc(), a.c.id.desc()).limit(limit))).all())


# The first fact of each live customer names the partner that brought it (a merge keeps the survivor's facts and
# the merged customer's: the earliest of them all decides, as the oldest customer survives).
_LIVE = "SELECT id FROM interaction.customer WHERE merged_into IS NULL AND erased_at IS NULL"
_BROUGHT = f"""
SELECT DISTINCT ON (a.customer_id) a.customer_id, a.source FROM interaction.activity a
WHERE a.customer_id IN ({_LIVE}) ORDER BY a.customer_id, a.occurred_at, a.created_at, a.id"""

FIGURES = sa.text(f"""
WITH brought AS ({_BROUGHT})
SELECT
  (SELECT count(*) FROM brought WHERE source = :p) AS customers_brought,
  (SELECT count(DISTINCT customer_id) FROM interaction.activity
     WHERE source = :p AND customer_id IN ({_LIVE})) AS customers_reached,
  (SELECT count(*) FROM interaction.activity WHERE source = :p AND type = 'interaction.logged') AS touchpoints,
  (SELECT count(*) FROM interaction.activity WHERE source = :p AND type = 'feedback.submitted') AS responses
""")

FEEDBACK = sa.text("""
SELECT count(n) AS nps_responses, avg(n) AS mean_nps,
       100.0 * (count(*) FILTER (WHERE n >= 9) - count(*) FILTER (WHERE n <= 6)) / nullif(count(n), 0) AS nps,
       count(c) AS csat_responses, avg(c) AS mean_csat
FROM (SELECT (data->>'nps')::int AS n, (data->>'csat')::int AS c FROM interaction.activity
      WHERE source = :p AND type = 'feedback.submitted') f
""")

REVENUE = sa.text("""
SELECT p.currency, count(*) AS orders,
       round(sum(greatest(p.amount - coalesce(adj.refunded, 0), 0)), 4) AS revenue
FROM interaction.purchase p
LEFT JOIN (SELECT source, order_id, sum(amount) FILTER (WHERE NOT cancelled) AS refunded, bool_or(cancelled) AS cancelled
           FROM interaction.purchase_adjustment WHERE source = :p GROUP BY source, order_id) adj
       ON adj.source = p.source AND adj.order_id = p.order_id
WHERE p.source = :p AND NOT coalesce(adj.cancelled, false)
GROUP BY p.currency ORDER BY p.currency
""")

SEGMENTS = sa.text(f"""
WITH brought AS ({_BROUGHT}),
reached AS (SELECT DISTINCT customer_id FROM interaction.activity WHERE source = :p),
members AS (SELECT m.customer_id, m.segment_key, m.segment_name FROM interaction.segment_membership m
            WHERE m.member AND m.customer_id IN ({_LIVE}))
SELECT m.segment_key, max(m.segment_name) AS segment_name, count(*) AS members,
       count(b.customer_id) AS brought, count(r.customer_id) AS reached
FROM members m
LEFT JOIN brought b ON b.customer_id = m.customer_id AND b.source = :p
LEFT JOIN reached r ON r.customer_id = m.customer_id
GROUP BY m.segment_key
ORDER BY count(b.customer_id)::float / count(*) DESC, m.segment_key
""")


class Figures(TypedDict):
    totals: sa.Row  # FIGURES
    feedback: sa.Row  # FEEDBACK
    revenue: list[sa.Row]  # REVENUE, by currency
    segments: list[sa.Row]  # SEGMENTS


async def figures(session: AsyncSession, partner_id: str) -> Figures:
    params = {"p": partner_id}
    return {
        "totals": (await session.execute(FIGURES, params)).one(),
        "feedback": (await session.execute(FEEDBACK, params)).one(),
        "revenue": list((await session.execute(REVENUE, params)).all()),
        "segments": list((await session.execute(SEGMENTS, params)).all()),
    }
