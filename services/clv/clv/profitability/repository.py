"""Queries of the profitability feature: the fold's fixed-shape statements, the cost settings, and the one
query every figure comes from (`CUSTOMER_PROFIT`, per customer and currency)."""

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from clv.profitability.models import cost_rate, touchpoint_cost

# A fact keyed by a merged-away id that arrives after the merge goes to the survivor. A purchase seen before
# keeps its row, unless the row is a copy made at install (`backfilled`): the event knows more.
INSERT_ORDERS = sa.text("""
INSERT INTO clv.profit_order (purchase_id, customer_id, source, currency, amount, known_cost, shipping_cost, discount,
                              occurred_at)
SELECT b.purchase_id, coalesce(a.survivor_id, b.customer_id), b.source, b.currency, b.amount, b.known_cost,
       b.shipping, b.discount, b.occurred_at
FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:sources AS text[]),
            CAST(:currencies AS text[]), CAST(:amounts AS numeric[]), CAST(:known_costs AS numeric[]),
            CAST(:shipping AS numeric[]), CAST(:discounts AS numeric[]), CAST(:occurred AS timestamptz[]))
     AS b(purchase_id, customer_id, source, currency, amount, known_cost, shipping, discount, occurred_at)
LEFT JOIN clv.profit_alias a ON a.merged_id = b.customer_id
ON CONFLICT (purchase_id) DO UPDATE SET
    source = EXCLUDED.source, known_cost = EXCLUDED.known_cost, shipping_cost = EXCLUDED.shipping_cost,
    discount = EXCLUDED.discount, backfilled = false, updated_at = now()
WHERE clv.profit_order.backfilled
RETURNING purchase_id
""")
DELETE_PARTS = sa.text("DELETE FROM clv.profit_order_part WHERE purchase_id = ANY(CAST(:purchase_ids AS uuid[]))")
INSERT_PARTS = sa.text("""
INSERT INTO clv.profit_order_part (purchase_id, category, value)
SELECT * FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:categories AS text[]), CAST(:values AS numeric[]))
""")
INSERT_REFUNDS = sa.text("""
INSERT INTO clv.profit_refund (refund_id, purchase_id, amount, cancelled, occurred_at)
SELECT * FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:amounts AS numeric[]),
                     CAST(:cancelled AS boolean[]), CAST(:occurred AS timestamptz[]))
ON CONFLICT (refund_id) DO NOTHING
""")
INSERT_TOUCHPOINTS = sa.text("""
INSERT INTO clv.profit_touchpoint (touchpoint_id, customer_id, kind, occurred_at)
SELECT b.touchpoint_id, coalesce(a.survivor_id, b.customer_id), b.kind, b.occurred_at
FROM unnest(CAST(:touchpoint_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:kinds AS text[]),
            CAST(:occurred AS timestamptz[])) AS b(touchpoint_id, customer_id, kind, occurred_at)
LEFT JOIN clv.profit_alias a ON a.merged_id = b.customer_id
ON CONFLICT (touchpoint_id) DO NOTHING
""")
ERASE = [sa.text(sql) for sql in [
    "DELETE FROM clv.profit_refund WHERE purchase_id IN "
    "(SELECT purchase_id FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
    "DELETE FROM clv.profit_order_part WHERE purchase_id IN "
    "(SELECT purchase_id FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
    "DELETE FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.profit_touchpoint WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
    "DELETE FROM clv.profit_alias WHERE merged_id = ANY(CAST(:ids AS uuid[])) OR survivor_id = ANY(CAST(:ids AS uuid[]))",
]]
MERGE = [sa.text(sql) for sql in [
    "UPDATE clv.profit_order SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
    "UPDATE clv.profit_touchpoint SET customer_id = :survivor, updated_at = now() WHERE customer_id = :merged",
    "UPDATE clv.profit_alias SET survivor_id = :survivor, updated_at = now() WHERE survivor_id = :merged",
    "INSERT INTO clv.profit_alias (merged_id, survivor_id, merge_id) VALUES (:merged, :survivor, :merge_id) "
    "ON CONFLICT (merged_id) DO UPDATE SET survivor_id = EXCLUDED.survivor_id, merge_id = EXCLUDED.merge_id, "
    "updated_at = now()",
]]
# The owner (interaction) lists the purchases and touchpoints that go back to the restored customer.
UNMERGE = [sa.text(sql) for sql in [
    "UPDATE clv.profit_order SET customer_id = :restored, updated_at = now() "
    "WHERE purchase_id = ANY(CAST(:purchase_ids AS uuid[]))",
    "UPDATE clv.profit_touchpoint SET customer_id = :restored, updated_at = now() "
    "WHERE touchpoint_id = ANY(CAST(:touchpoint_ids AS uuid[]))",
    "DELETE FROM clv.profit_alias WHERE merge_id = :merge_id OR merged_id = :restored",
]]

# Per customer and currency, to date (docs/clv.md, Profitability). Cancelled orders do not count. A refund
# lowers revenue; the cost of goods is kept in the proportion of the order kept (returned goods go back to
# stock) and each refund costs the `return` touchpoint cost to handle. Touchpoints are charged in the
# customer's main currency (most orders, then most revenue): a touchpoint has no currency of its own.
# `{orders_of}` narrows to some customers (`AND o.customer_id = ANY(:ids)`) or to nothing.
CUSTOMER_PROFIT = """
WITH refunds AS (
    SELECT r.purchase_id, sum(r.amount) AS refunded, count(*) FILTER (WHERE NOT r.cancelled) AS returns,
           bool_or(r.cancelled) AS cancelled
    FROM clv.profit_refund r JOIN clv.profit_order o USING (purchase_id)
    WHERE true {orders_of}
    GROUP BY r.purchase_id
), orders AS (
    SELECT o.purchase_id, o.customer_id, o.currency, o.amount, o.shipping_cost, o.discount,
           least(coalesce(r.refunded, 0), o.amount) AS refunded, coalesce(r.returns, 0) AS returns,
           o.known_cost + coalesce((
               SELECT sum(pp.value * CAST(coalesce(cat.cost_rate, par.cost_rate, :fallback_rate) AS numeric))
               FROM clv.profit_order_part pp
               LEFT JOIN clv.cost_rate cat ON cat.scope = 'category' AND cat.key = pp.category
               LEFT JOIN clv.cost_rate par ON par.scope = 'partner' AND par.key = o.source
               WHERE pp.purchase_id = o.purchase_id), 0) AS goods_cost
    FROM clv.profit_order o LEFT JOIN refunds r USING (purchase_id)
    WHERE NOT coalesce(r.cancelled, false) {orders_of}
), per_currency AS (
    SELECT customer_id, currency, count(*) AS orders, sum(amount) AS revenue, sum(refunded) AS refunded,
           sum(CASE WHEN amount > 0 THEN goods_cost * (amount - refunded) / amount ELSE goods_cost END)
               AS cost_of_goods,
           sum(shipping_cost) AS shipping_cost, sum(discount) AS discounts,
           sum(returns * coalesce((SELECT t.cost FROM clv.touchpoint_cost t
                                  WHERE t.kind = 'return' AND t.currency = orders.currency), 0)) AS returns_cost
    FROM orders GROUP BY customer_id, currency
), main_currency AS (
    SELECT DISTINCT ON (customer_id) customer_id, currency FROM per_currency
    ORDER BY customer_id, orders DESC, revenue DESC, currency
), service AS (
    SELECT m.customer_id, m.currency, sum(coalesce(c.cost, 0)) AS service_cost, count(*) AS touchpoints
    FROM main_currency m
    JOIN clv.profit_touchpoint tp ON tp.customer_id = m.customer_id
    LEFT JOIN clv.touchpoint_cost c ON c.kind = tp.kind AND c.currency = m.currency
    GROUP BY m.customer_id, m.currency
)
SELECT p.customer_id, p.currency, p.orders, p.revenue, p.refunded, p.revenue - p.refunded AS net_revenue,
       p.cost_of_goods, p.shipping_cost, p.discounts, p.returns_cost,
       coalesce(s.service_cost, 0) AS service_cost, coalesce(s.touchpoints, 0) AS touchpoints,
       p.shipping_cost + p.returns_cost + coalesce(s.service_cost, 0) + p.discounts AS cost_to_serve,
       p.revenue - p.refunded - p.cost_of_goods - p.shipping_cost - p.returns_cost - coalesce(s.service_cost, 0)
           AS profit
FROM per_currency p LEFT JOIN service s USING (customer_id, currency)
"""

# Quadrants of one currency: high = strictly above the threshold (the median unless given).
MATRIX = """
WITH profit AS ({customer_profit}), cut AS (
    SELECT coalesce(CAST(:revenue_threshold AS numeric),
                    CAST(percentile_cont(0.5) WITHIN GROUP (ORDER BY net_revenue) AS numeric)) AS revenue_threshold,
           coalesce(CAST(:cost_threshold AS numeric),
                    CAST(percentile_cont(0.5) WITHIN GROUP (ORDER BY cost_to_serve) AS numeric)) AS cost_threshold
    FROM profit WHERE currency = :currency
)
SELECT cut.revenue_threshold, cut.cost_threshold, p.net_revenue > cut.revenue_threshold AS high_revenue,
       p.cost_to_serve > cut.cost_threshold AS high_cost, count(*) AS customers,
       avg(p.net_revenue) AS avg_net_revenue, avg(p.cost_to_serve) AS avg_cost_to_serve, avg(p.profit) AS avg_profit,
       sum(p.profit) AS total_profit, sum(p.net_revenue) AS total_net_revenue
FROM profit p CROSS JOIN cut
WHERE p.currency = :currency
GROUP BY cut.revenue_threshold, cut.cost_threshold, high_revenue, high_cost
"""

# The latest value of the customers, with the margin its scoring run used (the CLV is margin × revenue).
VALUES = sa.text("""
SELECT v.customer_id, v.currency, v.clv, v.expected_spend, CAST(r.settings ->> 'margin' AS float8) AS margin,
       v.scored_at
FROM clv.customer_value v JOIN clv.scoring_run r ON r.id = v.scoring_run_id
WHERE v.customer_id = ANY(CAST(:ids AS uuid[]))
""")


async def customer_profit(session: AsyncSession, customer_id: uuid.UUID, fallback_rate: float) -> list[sa.Row]:
    sql = CUSTOMER_PROFIT.format(orders_of="AND o.customer_id = :customer_id") + " ORDER BY p.currency"
    return list((await session.execute(sa.text(sql), {"customer_id": customer_id,
                                                       "fallback_rate": fallback_rate})).all())


async def matrix(session: AsyncSession, currency: str, fallback_rate: float, revenue_threshold: Decimal | None,
                 cost_threshold: Decimal | None) -> list[sa.Row]:
    # Every customer with an order in the currency; their touchpoints need their other currencies too (to pick
    # the main one), so the orders are narrowed to those customers, not to the currency.
    profit = CUSTOMER_PROFIT.format(orders_of=(
        "AND o.customer_id IN (SELECT customer_id FROM clv.profit_order WHERE currency = :currency)"))
    return list((await session.execute(sa.text(MATRIX.format(customer_profit=profit)), {
        "currency": currency, "fallback_rate": fallback_rate, "revenue_threshold": revenue_threshold,
        "cost_threshold": cost_threshold})).all())


async def values(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    return list((await session.execute(VALUES, {"ids": ids})).all())


async def resolve(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    survivor = (await session.execute(sa.text("SELECT survivor_id FROM clv.profit_alias WHERE merged_id = :id"),
                                      {"id": customer_id})).scalar()
    return survivor or customer_id


async def cost_settings(session: AsyncSession) -> tuple[list[sa.Row], list[sa.Row]]:
    rates = (await session.execute(sa.select(cost_rate).order_by(cost_rate.c.scope, cost_rate.c.key))).all()
    costs = (await session.execute(sa.select(touchpoint_cost)
                                   .order_by(touchpoint_cost.c.currency, touchpoint_cost.c.kind))).all()
    return list(rates), list(costs)


async def replace_cost_settings(session: AsyncSession, rates: list[dict], costs: list[dict]) -> None:
    """The settings become exactly these (one transaction: readers see the old or the new set)."""
    await session.execute(sa.delete(cost_rate))
    await session.execute(sa.delete(touchpoint_cost))
    if rates:
        await session.execute(insert(cost_rate), rates)
    if costs:
        await session.execute(insert(touchpoint_cost), costs)
