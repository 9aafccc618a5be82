"""Queries on clv's copy of the purchases: the models' view (per-customer x, t_x, T, mean repeat spend as numpy
arrays) and a customer's summary with its latest value."""

import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from clv.fits.models import model_fit
from clv.scoring.models import customer_value, scoring_run
from clv.transaction_summary.models import customer_alias, transaction_summary

# Purchases net of refunds, cancelled ones out; one row per customer and purchase day (the models assume at
# most one purchase per period, so same-day orders count once, as in the literature and `lifetimes`).
STATISTICS = """
WITH net AS (
    SELECT p.customer_id, (p.occurred_at AT TIME ZONE 'UTC')::date AS day,
           greatest(p.amount - coalesce(r.refunded, 0), 0) AS value
    FROM clv.purchase p
    LEFT JOIN (SELECT purchase_id, sum(amount) AS refunded, bool_or(cancelled) AS cancelled
               FROM clv.refund {refunds_of} GROUP BY purchase_id) r USING (purchase_id)
    WHERE p.currency = :currency AND (p.occurred_at AT TIME ZONE 'UTC')::date <= :end_day
      AND NOT coalesce(r.cancelled, false) {purchases_of}
), days AS (
    SELECT customer_id, day, sum(value) AS value FROM net GROUP BY customer_id, day
)
SELECT customer_id,
       count(*) FILTER (WHERE day <= :calibration_end) - 1 AS x,
       max(day) FILTER (WHERE day <= :calibration_end) - min(day) AS t_x_days,
       :calibration_end - min(day) AS t_days,
       coalesce(sum(value) FILTER (WHERE day <= :calibration_end), 0) - (array_agg(value ORDER BY day))[1]
           AS repeat_value,
       count(*) FILTER (WHERE day > :calibration_end) AS holdout_x,
       sum(value) AS net_value
FROM days GROUP BY customer_id
HAVING min(day) <= :calibration_end
ORDER BY customer_id
"""
# Everyone in the currency (a run), or a few customers (incremental scoring: reads only their rows).
STATISTICS_ALL = sa.text(STATISTICS.format(refunds_of="", purchases_of=""))
STATISTICS_OF = sa.text(
    STATISTICS.format(
        refunds_of="WHERE purchase_id IN (SELECT purchase_id FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
        purchases_of="AND p.customer_id = ANY(CAST(:ids AS uuid[]))",
    )
)


@dataclass(frozen=True)
class Statistics:
    customer_ids: list
    x: np.ndarray
    t_x: np.ndarray  # in model units
    T: np.ndarray  # in model units
    mean_repeat_spend: np.ndarray
    holdout_x: np.ndarray
    net_value: np.ndarray  # to the end day, net of refunds

    def __len__(self) -> int:
        return len(self.customer_ids)


async def load_statistics(
    session: AsyncSession, currency: str, calibration_end: date, end_day: date, unit_days: float, customer_ids: list | None = None
) -> Statistics:
    params = {"currency": currency, "calibration_end": calibration_end, "end_day": end_day}
    if customer_ids is None:
        rows = (await session.execute(STATISTICS_ALL, params)).all()
    else:
        rows = (await session.execute(STATISTICS_OF, params | {"ids": list(customer_ids)})).all()
    x = np.array([r.x for r in rows], dtype=np.float64)
    repeat_value = np.array([float(r.repeat_value) for r in rows], dtype=np.float64)
    return Statistics(
        customer_ids=[r.customer_id for r in rows],
        x=x,
        t_x=np.array([r.t_x_days for r in rows], dtype=np.float64) / unit_days,
        T=np.array([r.t_days for r in rows], dtype=np.float64) / unit_days,
        mean_repeat_spend=np.divide(repeat_value, x, out=np.zeros_like(x), where=x > 0),
        holdout_x=np.array([r.holdout_x for r in rows], dtype=np.float64),
        net_value=np.array([float(r.net_value) for r in rows], dtype=np.float64),
    )


async def resolve_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """A merged-away id answers as its survivor."""
    survivor = (
        await session.execute(sa.select(customer_alias.c.survivor_id).where(customer_alias.c.merged_id == customer_id))
    ).scalar()
    return survivor or customer_id


async def values_by_currency(session: AsyncSession, customer_id: uuid.UUID) -> list[sa.Row]:
    """Per currency: the customer's transaction summary, with its latest value, the fit and the run's settings.
    A merged-away id answers as its survivor (as `resolve_customer`, in the same statement): the rows'
    `customer_id` is the one resolved."""
    t, v, f, run = transaction_summary, customer_value, model_fit, scoring_run
    survivor = sa.select(customer_alias.c.survivor_id).where(customer_alias.c.merged_id == customer_id).scalar_subquery()
    return list(
        (
            await session.execute(
                sa.select(
                    t,
                    *[c.label(f"v_{c.name}") for c in v.c if c.name not in ("customer_id", "currency")],
                    f.c.model.label("f_model"),
                    f.c.version.label("f_version"),
                    run.c.settings.label("run_settings"),
                )
                .select_from(
                    t.outerjoin(v, sa.and_(v.c.customer_id == t.c.customer_id, v.c.currency == t.c.currency))
                    .outerjoin(f, f.c.id == v.c.fit_id)
                    .outerjoin(run, run.c.id == v.c.scoring_run_id)
                )
                .where(t.c.customer_id == sa.func.coalesce(survivor, customer_id))
                .order_by(t.c.currency)
            )
        ).all()
    )
