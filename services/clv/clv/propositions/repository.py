import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from clv.propositions.models import customer_stage, delivery, outcome_correction, proposition, segment_membership
from clv.scoring.models import customer_value


async def insert_proposition(session: AsyncSession, values: dict[str, Any]) -> sa.Row:
    return (await session.execute(sa.insert(proposition).values(**values).returning(proposition))).one()


async def get_proposition(session: AsyncSession, proposition_id: uuid.UUID, for_update: bool = False) -> sa.Row | None:
    q = sa.select(proposition).where(proposition.c.id == proposition_id)
    return (await session.execute(q.with_for_update() if for_update else q)).one_or_none()


async def update_proposition(session: AsyncSession, proposition_id: uuid.UUID, values: dict[str, Any]) -> sa.Row | None:
    return (
        await session.execute(
            sa.update(proposition)
            .where(proposition.c.id == proposition_id)
            .values(updated_at=sa.func.now(), **values)
            .returning(proposition)
        )
    ).one_or_none()


async def list_propositions(
    session: AsyncSession, *, active: bool | None, kind: str | None, after: uuid.UUID | None, limit: int
) -> list[sa.Row]:
    q = sa.select(proposition).order_by(proposition.c.id).limit(limit)
    if active is not None:
        q = q.where(proposition.c.active.is_(active))
    if kind:
        q = q.where(proposition.c.kind == kind)
    if after:
        q = q.where(proposition.c.id > after)
    return list((await session.execute(q)).all())


async def active_propositions(session: AsyncSession, currency: str) -> list[sa.Row]:
    return list(
        (
            await session.execute(
                sa.select(proposition)
                .where(proposition.c.active.is_(True), proposition.c.currency == currency)
                .order_by(proposition.c.name)
            )
        ).all()
    )


async def customer_facts(session: AsyncSession, customer_id: uuid.UUID, currency: str) -> dict[str, Any]:
    value = (
        await session.execute(
            sa.select(customer_value).where(customer_value.c.customer_id == customer_id, customer_value.c.currency == currency)
        )
    ).one_or_none()
    segments = set(
        (
            await session.execute(
                sa.select(segment_membership.c.segment_key).where(
                    segment_membership.c.customer_id == customer_id, segment_membership.c.member
                )
            )
        ).scalars()
    )
    stage = (await session.execute(sa.select(customer_stage.c.stage).where(customer_stage.c.customer_id == customer_id))).scalar()
    return {"value": value, "segments": segments, "stage": stage}


async def contact_counts(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> dict[uuid.UUID, int]:
    """Treatment deliveries per proposition to this customer within each proposition's contact window."""
    d, p = delivery, proposition
    rows = await session.execute(
        sa.select(d.c.proposition_id, sa.func.count())
        .select_from(d.join(p, p.c.id == d.c.proposition_id))
        .where(
            d.c.customer_id == customer_id,
            d.c.group == "treatment",
            d.c.delivered_at > now - sa.func.make_interval(0, 0, 0, p.c.contact_window_days),
        )
        .group_by(d.c.proposition_id)
    )
    return {r[0]: r[1] for r in rows}


async def spend_budget(session: AsyncSession, proposition_id: uuid.UUID, cost: Decimal) -> bool:
    """Take `cost` from the budget atomically; False if it would overrun."""
    row = (
        await session.execute(
            sa.update(proposition)
            .where(
                proposition.c.id == proposition_id,
                sa.or_(proposition.c.budget.is_(None), proposition.c.budget_spent + cost <= proposition.c.budget),
            )
            .values(budget_spent=proposition.c.budget_spent + cost, updated_at=sa.func.now())
            .returning(proposition.c.id)
        )
    ).one_or_none()
    return row is not None


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> sa.Row:
    return (await session.execute(sa.insert(delivery).values(**values).returning(delivery))).one()


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> sa.Row | None:
    return (await session.execute(sa.select(delivery).where(delivery.c.id == delivery_id))).one_or_none()


async def set_first_outcome(session: AsyncSession, delivery_id: uuid.UUID, outcome: str) -> sa.Row | None:
    """The outcome, only if none is recorded yet (atomic: two racing answers cannot both win)."""
    return (
        await session.execute(
            sa.update(delivery)
            .where(delivery.c.id == delivery_id, delivery.c.outcome.is_(None))
            .values(outcome=outcome, outcome_at=sa.func.now(), updated_at=sa.func.now())
            .returning(delivery)
        )
    ).one_or_none()


async def correct_outcome(
    session: AsyncSession, delivery_id: uuid.UUID, from_outcome: str, values: dict[str, Any]
) -> sa.Row | None:
    """Change the outcome from `from_outcome` (None if it changed meanwhile) and write the audit row."""
    row = (
        await session.execute(
            sa.update(delivery)
            .where(delivery.c.id == delivery_id, delivery.c.outcome == from_outcome)
            .values(
                outcome=values["to_outcome"],
                outcome_at=values["corrected_at"],
                corrections=delivery.c.corrections + 1,
                updated_at=sa.func.now(),
            )
            .returning(delivery.c.id)
        )
    ).one_or_none()
    if row is None:
        return None
    return (
        await session.execute(
            sa.insert(outcome_correction)
            .values(delivery_id=delivery_id, from_outcome=from_outcome, **values)
            .returning(outcome_correction)
        )
    ).one()


async def corrections(
    session: AsyncSession, delivery_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.Row]:
    c = outcome_correction
    q = sa.select(c).where(c.c.delivery_id == delivery_id).order_by(c.c.corrected_at, c.c.id).limit(limit)
    if after is not None:
        q = q.where(sa.tuple_(c.c.corrected_at, c.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    return list((await session.execute(q)).all())


PERFORMANCE = sa.text("""
WITH d AS (
    SELECT d.id, d.customer_id, d."group", d.outcome, d.cost, d.delivered_at FROM clv.delivery d
    WHERE d.proposition_id = :proposition_id
), revenue AS (
    SELECT d.id, coalesce(sum(greatest(p.amount - coalesce(r.refunded, 0), 0)), 0) AS revenue
    FROM d
    LEFT JOIN clv.purchase p ON p.customer_id = d.customer_id AND p.currency = :currency
         AND p.occurred_at > d.delivered_at AND p.occurred_at <= d.delivered_at + make_interval(days => :window)
    LEFT JOIN (SELECT purchase_id, sum(amount) AS refunded, bool_or(cancelled) AS cancelled FROM clv.refund
               GROUP BY purchase_id) r ON r.purchase_id = p.purchase_id
    WHERE NOT coalesce(r.cancelled, false)
    GROUP BY d.id
)
SELECT
    count(*) FILTER (WHERE d."group" = 'treatment') AS treated,
    count(*) FILTER (WHERE d."group" = 'holdout') AS holdout,
    count(*) FILTER (WHERE d.outcome = 'accepted') AS accepted,
    count(*) FILTER (WHERE d.outcome = 'declined') AS declined,
    count(*) FILTER (WHERE d.outcome = 'ignored') AS ignored,
    count(*) FILTER (WHERE d."group" = 'treatment' AND d.outcome IS NULL) AS pending,
    avg(coalesce(rv.revenue, 0)) FILTER (WHERE d."group" = 'treatment') AS revenue_treated,
    avg(coalesce(rv.revenue, 0)) FILTER (WHERE d."group" = 'holdout') AS revenue_holdout,
    coalesce(sum(d.cost), 0) AS cost
FROM d LEFT JOIN revenue rv ON rv.id = d.id
""")


async def performance(session: AsyncSession, proposition_id: uuid.UUID, currency: str, window_days: int) -> sa.Row:
    return (
        await session.execute(PERFORMANCE, {"proposition_id": proposition_id, "currency": currency, "window": window_days})
    ).one()


GAP = {
    "proposition": sa.text("""
        SELECT f.proposition_id AS grp, count(*) AS responses, avg(f.perceived_value) AS perceived,
               avg(f.expected_value) AS expected, avg(f.expected_value - f.perceived_value) AS gap,
               count(DISTINCT f.customer_id) FILTER (WHERE f.expected_value > f.perceived_value) AS with_gap,
               coalesce(sum(greatest(f.expected_value - f.perceived_value, 0)), 0) AS points
        FROM clv.feedback f
        WHERE f.proposition_id IS NOT NULL AND f.perceived_value IS NOT NULL AND f.expected_value IS NOT NULL
        GROUP BY f.proposition_id ORDER BY points DESC, grp"""),
    "segment": sa.text("""
        SELECT m.segment_key AS grp, count(*) AS responses, avg(f.perceived_value) AS perceived,
               avg(f.expected_value) AS expected, avg(f.expected_value - f.perceived_value) AS gap,
               count(DISTINCT f.customer_id) FILTER (WHERE f.expected_value > f.perceived_value) AS with_gap,
               coalesce(sum(greatest(f.expected_value - f.perceived_value, 0)), 0) AS points
        FROM clv.feedback f JOIN clv.segment_membership m ON m.customer_id = f.customer_id AND m.member
        WHERE f.perceived_value IS NOT NULL AND f.expected_value IS NOT NULL
        GROUP BY m.segment_key ORDER BY points DESC, grp"""),
}


async def value_gap(session: AsyncSession, group_by: str) -> list[sa.Row]:
    return list((await session.execute(GAP[group_by])).all())


async def customer_deliveries(
    session: AsyncSession, customer_id: uuid.UUID, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.Row]:
    q = (
        sa.select(delivery)
        .where(delivery.c.customer_id == customer_id)
        .order_by(delivery.c.delivered_at.desc(), delivery.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, last_id = before
        q = q.where(sa.tuple_(delivery.c.delivered_at, delivery.c.id) < sa.tuple_(sa.literal(at), sa.literal(last_id)))
    return list((await session.execute(q)).all())
