from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.campaigns.models import campaign


async def insert_campaign(session: AsyncSession, values: dict[str, Any]) -> sa.Row | None:
    return (await session.execute(insert(campaign).values(**values).on_conflict_do_nothing().returning(campaign))).one_or_none()


async def update_campaign(session: AsyncSession, key: str, values: dict[str, Any]) -> sa.Row | None:
    return (
        await session.execute(
            sa.update(campaign).where(campaign.c.key == key).values(updated_at=sa.func.now(), **values).returning(campaign)
        )
    ).one_or_none()


async def get_campaign(session: AsyncSession, key: str) -> sa.Row | None:
    return (await session.execute(sa.select(campaign).where(campaign.c.key == key))).one_or_none()


async def page_campaigns(session: AsyncSession, after: str | None, limit: int) -> list[sa.Row]:
    q = sa.select(campaign).order_by(campaign.c.key).limit(limit)
    if after is not None:
        q = q.where(campaign.c.key > after)
    return list((await session.execute(q)).all())


async def campaigns_by_key(session: AsyncSession, keys: list[str]) -> dict[str, sa.Row]:
    rows = await session.execute(sa.select(campaign).where(campaign.c.key.in_(keys)))
    return {r.key: r for r in rows}


def _report_sql(column: str, cohort: str | None) -> sa.TextClause:
    # `column` and `cohort` come from enums (never from the caller's text): safe to place in the statement.
    def bucket(expr: str) -> str:
        if cohort is None:
            return "CAST(NULL AS timestamptz)"
        return f"(date_trunc('{cohort}', {expr} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"

    # Leads and purchases belong to their home's live customer (shared/contracts/identity.py): the facts
    # consumer's lookup of merged-away ids says which one that is.
    return sa.text(f"""
WITH lead AS (
    SELECT l.event_id, coalesce(m.survivor_id, l.home_customer_id) AS customer_id, l.{column} AS key, l.qualified,
           l.occurred_at
    FROM lifecycle.campaign_lead l LEFT JOIN lifecycle.merged_customer m ON m.merged_id = l.home_customer_id
    WHERE l.{column} IS NOT NULL
), first_touch AS (  -- a customer is attributed to the first campaign (or source) that reached it
    SELECT DISTINCT ON (customer_id) customer_id, key, occurred_at FROM lead ORDER BY customer_id, occurred_at, event_id
), attributed AS (
    SELECT customer_id, key, occurred_at AS lead_at, {bucket("occurred_at")} AS cohort FROM first_touch
    WHERE occurred_at >= :start AND occurred_at < :end
), net AS (
    SELECT p.customer_id, p.currency, p.occurred_at, greatest(p.amount - coalesce(r.refunded, 0), 0) AS amount
    FROM (SELECT coalesce(m.survivor_id, p.home_customer_id) AS customer_id, p.purchase_id, p.currency,
                 p.occurred_at, p.amount
          FROM lifecycle.campaign_purchase p
          LEFT JOIN lifecycle.merged_customer m ON m.merged_id = p.home_customer_id) p
    LEFT JOIN (SELECT purchase_id, sum(amount) FILTER (WHERE NOT cancelled) AS refunded, bool_or(cancelled) AS cancelled
               FROM lifecycle.campaign_refund GROUP BY purchase_id) r ON r.purchase_id = p.purchase_id
    WHERE NOT coalesce(r.cancelled, false) AND p.customer_id IN (SELECT customer_id FROM attributed)
), per_customer AS (
    SELECT a.customer_id, a.key, a.cohort, a.lead_at, min(n.occurred_at) AS first_purchase_at,
           coalesce(sum(n.amount) FILTER (WHERE n.currency = :currency AND n.occurred_at < :end), 0) AS revenue
    FROM attributed a LEFT JOIN net n ON n.customer_id = a.customer_id
    GROUP BY a.customer_id, a.key, a.cohort, a.lead_at
), acquired AS (  -- a first purchase at or after the first lead, before the period's end
    SELECT c.*, (c.first_purchase_at >= c.lead_at AND c.first_purchase_at < :end) AS bought FROM per_customer c
), customers AS (
    SELECT a.key, a.cohort, count(*) AS customers, count(*) FILTER (WHERE a.bought) AS first_purchases,
           coalesce(sum(a.revenue) FILTER (WHERE a.bought), 0) AS revenue,
           coalesce(sum(v.clv) FILTER (WHERE a.bought), 0) AS clv
    FROM acquired a LEFT JOIN lifecycle.campaign_value v ON v.customer_id = a.customer_id AND v.currency = :currency
    GROUP BY a.key, a.cohort
), leads AS (
    SELECT key, {bucket("occurred_at")} AS cohort, count(*) AS leads, count(*) FILTER (WHERE qualified) AS qualified
    FROM lead WHERE occurred_at >= :start AND occurred_at < :end GROUP BY 1, 2
)
SELECT coalesce(l.key, c.key) AS key, coalesce(l.cohort, c.cohort) AS cohort, coalesce(l.leads, 0) AS leads,
       coalesce(l.qualified, 0) AS qualified, coalesce(c.customers, 0) AS customers,
       coalesce(c.first_purchases, 0) AS first_purchases, round(coalesce(c.revenue, 0), 4) AS revenue,
       round(coalesce(c.clv, 0), 4) AS clv
FROM leads l FULL JOIN customers c ON c.key = l.key AND c.cohort IS NOT DISTINCT FROM l.cohort
ORDER BY 1, 2
""")


async def report(
    session: AsyncSession, column: str, cohort: str | None, currency: str, start: datetime, end: datetime
) -> list[sa.Row]:
    return list((await session.execute(_report_sql(column, cohort), {"currency": currency, "start": start, "end": end})).all())
