"""The rules: profit to date, projected profit, the matrix's quadrants, and the cost settings (docs/clv.md,
Profitability). The figures come from one query (repository.CUSTOMER_PROFIT); this module derives the rest."""

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import DomainError, NotFound

from clv.profitability import repository as repo
from clv.profitability.schemas import (
    CostRate,
    CostSettings,
    CurrencyProfit,
    CustomerProfitRead,
    ProfitabilityMatrix,
    ProjectedProfit,
    Quadrant,
    QuadrantSummary,
    TouchpointCost,
    quadrant,
)
from clv.settings import ClvSettings

CENT = Decimal("0.0001")


class DuplicateSetting(DomainError):
    status, slug, title = 422, "duplicate-cost-setting", "A cost setting is given twice"


def fallback_rate(settings: ClvSettings) -> float:
    """Without any cost in the event or a default, goods cost 1 − margin: profit is then margin × revenue,
    what the single global `margin` meant before per-order costs."""
    return 1.0 - settings.margin


def _q(value: Decimal | float | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(CENT)


def projected(row: sa.Row, margin_rate: float | None, value: sa.Row | None) -> ProjectedProfit | None:
    """expected revenue × observed margin rate − expected cost to serve (docs/clv.md, Profitability)."""
    if value is None or margin_rate is None or not value.margin:
        return None
    revenue = Decimal(value.clv) / Decimal(str(value.margin))
    purchases = float(revenue / value.expected_spend) if value.expected_spend > 0 else 0.0
    # Per order to date: what serving cost besides the discounts (future revenue is already net of those).
    per_order = (row.shipping_cost + row.service_cost + row.returns_cost) / row.orders if row.orders else Decimal(0)
    cost = per_order * Decimal(str(purchases))
    return ProjectedProfit(
        expected_revenue=_q(revenue),
        expected_purchases=purchases,
        expected_cost_to_serve=_q(cost),
        projected_profit=_q(revenue * Decimal(str(margin_rate)) - cost),
        scored_at=value.scored_at,
    )


def margin_rate(row: sa.Row) -> float | None:
    return float((row.net_revenue - row.cost_of_goods) / row.net_revenue) if row.net_revenue > 0 else None


async def customer_profit(session: AsyncSession, customer_id: uuid.UUID, settings: ClvSettings) -> CustomerProfitRead:
    resolved = await repo.resolve(session, customer_id)
    rate = fallback_rate(settings)
    rows = await repo.customer_profit(session, resolved, rate)
    if not rows:
        raise NotFound(f"no orders known for customer {customer_id}")
    values = {v.currency: v for v in await repo.values(session, [resolved])}
    out = []
    for r in rows:
        thresholds = await _thresholds(session, r.currency, rate)
        m = margin_rate(r)
        out.append(
            CurrencyProfit(
                currency=r.currency,
                orders=r.orders,
                revenue=_q(r.revenue),
                refunded=_q(r.refunded),
                net_revenue=_q(r.net_revenue),
                cost_of_goods=_q(r.cost_of_goods),
                shipping_cost=_q(r.shipping_cost),
                returns_cost=_q(r.returns_cost),
                service_cost=_q(r.service_cost),
                touchpoints=r.touchpoints,
                discounts=_q(r.discounts),
                cost_to_serve=_q(r.cost_to_serve),
                margin_rate=m,
                profit=_q(r.profit),
                quadrant=quadrant(r.net_revenue > thresholds[0], r.cost_to_serve > thresholds[1]) if thresholds else None,
                projected=projected(r, m, values.get(r.currency)),
            )
        )
    return CustomerProfitRead(
        customer_id=resolved, resolved_from=customer_id if resolved != customer_id else None, by_currency=out
    )


async def _thresholds(session: AsyncSession, currency: str, rate: float) -> tuple[Decimal, Decimal] | None:
    rows = await repo.matrix(session, currency, rate, None, None)
    return (rows[0].revenue_threshold, rows[0].cost_threshold) if rows else None


async def matrix(
    session: AsyncSession, currency: str, settings: ClvSettings, revenue_threshold: Decimal | None, cost_threshold: Decimal | None
) -> ProfitabilityMatrix:
    rows = await repo.matrix(session, currency, fallback_rate(settings), revenue_threshold, cost_threshold)
    by_quadrant = {quadrant(r.high_revenue, r.high_cost): r for r in rows}
    total = sum((r.total_profit for r in rows), Decimal(0))
    quadrants = []
    for q in Quadrant:
        r = by_quadrant.get(q)
        quadrants.append(
            QuadrantSummary(
                quadrant=q,
                customers=r.customers if r else 0,
                avg_net_revenue=_q(r.avg_net_revenue) if r else None,
                avg_cost_to_serve=_q(r.avg_cost_to_serve) if r else None,
                avg_profit=_q(r.avg_profit) if r else None,
                total_profit=_q(r.total_profit) if r else Decimal(0).quantize(CENT),
                share_of_profit=float(r.total_profit / total) if r and total else None,
            )
        )
    return ProfitabilityMatrix(
        currency=currency,
        customers=sum(r.customers for r in rows),
        revenue_threshold=_q(rows[0].revenue_threshold) if rows else revenue_threshold,
        cost_to_serve_threshold=_q(rows[0].cost_threshold) if rows else cost_threshold,
        quadrants=quadrants,
    )


async def get_settings(session: AsyncSession, settings: ClvSettings) -> CostSettings:
    rates, costs = await repo.cost_settings(session)
    return CostSettings(
        cost_rates=[CostRate(scope=r.scope, key=r.key, cost_rate=r.cost_rate) for r in rates],
        touchpoint_costs=[TouchpointCost(kind=c.kind, currency=c.currency, cost=c.cost) for c in costs],
        fallback_cost_rate=fallback_rate(settings),
    )


async def put_settings(session: AsyncSession, body: CostSettings, settings: ClvSettings) -> CostSettings:
    for what, keys in [
        ("cost rate", [(r.scope, r.key) for r in body.cost_rates]),
        ("touchpoint cost", [(c.kind, c.currency) for c in body.touchpoint_costs]),
    ]:
        if len(set(keys)) != len(keys):
            raise DuplicateSetting(f"a {what} is given twice for the same key")
    await repo.replace_cost_settings(
        session, [r.model_dump() for r in body.cost_rates], [c.model_dump() for c in body.touchpoint_costs]
    )
    return await get_settings(session, settings)
