"""Queries of the profitability feature: the fold's fixed-shape statements, the cost settings, and the one
query every figure comes from (`CUSTOMER_PROFIT`, per customer and currency)."""

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import (
    IdentityFollower,
    erase_merges_sql,
    erased_among_sql,
    live_ctes,
    live_sql,
    not_erased_sql,
    pin_legacy_unmerge_sql,
    placement_lock_sql,
    remember_erased_sql,
)

from clv.profitability.models import cost_rate, touchpoint_cost

# Facts belong to live(home) over the merges clv has heard of (clv.customer_merge, shared/contracts/identity.py),
# the one record of merges the transaction summary keeps too: either consumer records a merge it hears of first,
# the other finds it known. The purchase events of a batch are placed in one statement: each order goes to
# live(home) (`live_ctes` over `:ids`, the homes); a purchase seen before keeps its row, unless the row is a copy
# made at install (`backfilled`): the event knows more. The parts (`:part_*`) of the orders stored now replace
# theirs (a purchase seen twice keeps its first parts); the part statements read the orders' RETURNING, not the
# table (sub-statements do not see each other's rows). Returns the orders stored now. A fact whose home was erased
# is dropped, as in every statement below that stores facts (clv.erased_customer, shared/contracts/identity.py).
ERASED = "clv.erased_customer"
PLACE_ORDERS = sa.text(f"""
{live_ctes("clv.customer_merge")},
stored AS (
    INSERT INTO clv.profit_order (purchase_id, customer_id, home_customer_id, source, currency, amount, known_cost,
                                  shipping_cost, discount, occurred_at)
    SELECT b.purchase_id, coalesce(l.live, b.home), b.home, b.source, b.currency, b.amount, b.known_cost,
           b.shipping, b.discount, b.occurred_at
    FROM unnest(CAST(:purchase_ids AS uuid[]), CAST(:ids AS uuid[]), CAST(:sources AS text[]),
                CAST(:currencies AS text[]), CAST(:amounts AS numeric[]), CAST(:known_costs AS numeric[]),
                CAST(:shipping AS numeric[]), CAST(:discounts AS numeric[]), CAST(:occurred AS timestamptz[]))
         WITH ORDINALITY AS b(purchase_id, home, source, currency, amount, known_cost, shipping, discount,
                              occurred_at, n)
    LEFT JOIN live l ON l.id = b.home
    WHERE {not_erased_sql(ERASED, "b.home")}
    ORDER BY b.n
    ON CONFLICT (purchase_id) DO UPDATE SET
        source = EXCLUDED.source, known_cost = EXCLUDED.known_cost, shipping_cost = EXCLUDED.shipping_cost,
        discount = EXCLUDED.discount, backfilled = false, updated_at = now()
    WHERE clv.profit_order.backfilled
    RETURNING purchase_id
), gone AS (
    DELETE FROM clv.profit_order_part WHERE purchase_id IN (SELECT purchase_id FROM stored)
), parts AS (
    INSERT INTO clv.profit_order_part (purchase_id, category, value)
    SELECT p.purchase_id, p.category, p.value
    FROM unnest(CAST(:part_purchase_ids AS uuid[]), CAST(:part_categories AS text[]), CAST(:part_values AS numeric[]))
         AS p(purchase_id, category, value)
    WHERE p.purchase_id IN (SELECT purchase_id FROM stored)
)
SELECT purchase_id FROM stored
""")
# A refund names its purchase: it is with whoever the order is with.
INSERT_REFUNDS = sa.text(f"""
INSERT INTO clv.profit_refund (refund_id, purchase_id, amount, cancelled, occurred_at)
SELECT r.refund_id, r.purchase_id, r.amount, r.cancelled, r.occurred_at
FROM unnest(CAST(:refund_ids AS uuid[]), CAST(:purchase_ids AS uuid[]), CAST(:amounts AS numeric[]),
            CAST(:cancelled AS boolean[]), CAST(:occurred AS timestamptz[]), CAST(:homes AS uuid[]))
     AS r(refund_id, purchase_id, amount, cancelled, occurred_at, home)
WHERE {not_erased_sql(ERASED, "r.home")}
ON CONFLICT (refund_id) DO NOTHING
""")
INSERT_TOUCHPOINTS = sa.text(f"""
INSERT INTO clv.profit_touchpoint (touchpoint_id, customer_id, home_customer_id, kind, occurred_at)
SELECT * FROM unnest(CAST(:touchpoint_ids AS uuid[]), CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]),
                     CAST(:kinds AS text[]), CAST(:occurred AS timestamptz[]))
     AS t(touchpoint_id, customer_id, home)
WHERE {not_erased_sql(ERASED, "t.home")}
ON CONFLICT (touchpoint_id) DO NOTHING
""")
# Everything keyed by the customer id goes (refunds and parts with their orders), and the merges that name it
# end, as the transaction summary's erasure does (whichever consumer gets there last finds nothing left to do).
ERASE = [
    sa.text(sql)
    for sql in [
        "DELETE FROM clv.profit_refund WHERE purchase_id IN "
        "(SELECT purchase_id FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
        "DELETE FROM clv.profit_order_part WHERE purchase_id IN "
        "(SELECT purchase_id FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[])))",
        "DELETE FROM clv.profit_order WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        "DELETE FROM clv.profit_touchpoint WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
        erase_merges_sql("clv.customer_merge"),
        remember_erased_sql(ERASED),
    ]
]

LIVES = sa.text(live_sql("clv.customer_merge"))
# The undo of a merge from before identity versions moves exactly the orders and touchpoints it lists.
PIN_LEGACY_UNMERGE = [
    *[(sa.text(sql), ["purchase_ids"]) for sql in pin_legacy_unmerge_sql("clv.profit_order", "purchase_id")],
    *[(sa.text(sql), ["touchpoint_ids"]) for sql in pin_legacy_unmerge_sql("clv.profit_touchpoint", "touchpoint_id")],
]
# Facts whose home is in a changed chain go to their home's live customer.
MOVE_FACTS = [
    sa.text(f"""
    UPDATE clv.{table} f SET customer_id = t.live, updated_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:lives AS uuid[])) AS t(home, live)
    WHERE f.home_customer_id = t.home AND f.customer_id <> t.live""")
    for table in ["profit_order", "profit_touchpoint"]
]
IDENTITY = IdentityFollower(
    "clv.customer_merge", erased_among=sa.text(erased_among_sql(ERASED)), move_facts=MOVE_FACTS, pin_legacy=PIN_LEGACY_UNMERGE
)


# Facts placed by one replica and a merge applied by another must not interleave (shared/contracts/identity.py).
PLACEMENT_LOCK = {exclusive: sa.text(placement_lock_sql("clv.profitability", exclusive)) for exclusive in (False, True)}


async def placement_lock(session: AsyncSession, exclusive: bool) -> None:
    await session.execute(PLACEMENT_LOCK[exclusive])


async def lives(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """live(id) of each id over the merges in force."""
    return {r.id: r.live for r in await session.execute(LIVES, {"ids": list(set(ids))})}


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
    return list((await session.execute(sa.text(sql), {"customer_id": customer_id, "fallback_rate": fallback_rate})).all())


async def matrix(
    session: AsyncSession, currency: str, fallback_rate: float, revenue_threshold: Decimal | None, cost_threshold: Decimal | None
) -> list[sa.Row]:
    # Every customer with an order in the currency; their touchpoints need their other currencies too (to pick
    # the main one), so the orders are narrowed to those customers, not to the currency.
    profit = CUSTOMER_PROFIT.format(
        orders_of=("AND o.customer_id IN (SELECT customer_id FROM clv.profit_order WHERE currency = :currency)")
    )
    return list(
        (
            await session.execute(
                sa.text(MATRIX.format(customer_profit=profit)),
                {
                    "currency": currency,
                    "fallback_rate": fallback_rate,
                    "revenue_threshold": revenue_threshold,
                    "cost_threshold": cost_threshold,
                },
            )
        ).all()
    )


async def values(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    return list((await session.execute(VALUES, {"ids": ids})).all())


async def resolve(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """The live customer a (possibly merged-away) id answers as."""
    return (await lives(session, [customer_id])).get(customer_id, customer_id)


async def cost_settings(session: AsyncSession) -> tuple[list[sa.Row], list[sa.Row]]:
    rates = (await session.execute(sa.select(cost_rate).order_by(cost_rate.c.scope, cost_rate.c.key))).all()
    costs = (await session.execute(sa.select(touchpoint_cost).order_by(touchpoint_cost.c.currency, touchpoint_cost.c.kind))).all()
    return list(rates), list(costs)


async def replace_cost_settings(session: AsyncSession, rates: list[dict], costs: list[dict]) -> None:
    """The settings become exactly these (one transaction: readers see the old or the new set)."""
    await session.execute(sa.delete(cost_rate))
    await session.execute(sa.delete(touchpoint_cost))
    if rates:
        await session.execute(insert(cost_rate), rates)
    if costs:
        await session.execute(insert(touchpoint_cost), costs)
