"""Queries on customers: the profile, search, the timeline, export and erasure."""

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.customers.models import (
    activity,
    customer,
    customer_identifier,
    customer_merge,
    customer_property,
    customer_spend,
    deal,
    purchase,
    purchase_adjustment,
)


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> sa.Row:
    """A customer's row, by an id known to exist (customers are never deleted, only erased or merged)."""
    return (await session.execute(sa.select(customer).where(customer.c.id == customer_id))).one()


async def identifiers_page(
    session: AsyncSession, customer_id: uuid.UUID, after: tuple[str, str, str] | None, limit: int
) -> list[sa.Row]:
    i = customer_identifier
    q = (
        sa.select(i.c.kind, i.c.source, i.c.external_id)
        .where(i.c.customer_id == customer_id)
        .order_by(i.c.kind, i.c.source, i.c.external_id)
        .limit(limit)
    )
    if after is not None:
        q = q.where(sa.tuple_(i.c.kind, i.c.source, i.c.external_id) > sa.tuple_(*map(sa.literal, after)))
    return list((await session.execute(q)).all())


async def get_profile_parts(session: AsyncSession, customer_id: uuid.UUID) -> dict:
    identifiers = (
        await session.execute(
            sa.select(customer_identifier.c.kind, customer_identifier.c.source, customer_identifier.c.external_id)
            .where(customer_identifier.c.customer_id == customer_id)
            .order_by(
                customer_identifier.c.created_at,
                customer_identifier.c.kind,
                customer_identifier.c.source,
                customer_identifier.c.external_id,
            )
        )
    ).all()
    properties = (
        await session.execute(
            sa.select(customer_property)
            .where(customer_property.c.customer_id == customer_id)
            .order_by(customer_property.c.kind, customer_property.c.key)
        )
    ).all()
    spend = (
        await session.execute(
            sa.select(customer_spend).where(customer_spend.c.customer_id == customer_id).order_by(customer_spend.c.currency)
        )
    ).all()
    return {"identifiers": identifiers, "properties": properties, "spend": spend}


async def search(
    session: AsyncSession,
    *,
    after: uuid.UUID | None,
    limit: int,
    email: str | None = None,
    phone: str | None = None,
    source: str | None = None,
    external_id: str | None = None,
    attribute: tuple[str, str] | None = None,
    partner: str | None = None,
    min_purchase_count: int | None = None,
    max_purchase_count: int | None = None,
    currency: str | None = None,
    min_total_spend: Decimal | None = None,
    max_total_spend: Decimal | None = None,
    last_seen_after: datetime | None = None,
    last_seen_before: datetime | None = None,
    preferred_channel: str | None = None,
) -> list[sa.Row]:
    c = customer
    query = sa.select(c).where(c.c.merged_into.is_(None))
    i = customer_identifier
    for kind, src, value in [("email", None, email), ("phone", None, phone), ("source", source, external_id)]:
        if value is not None:
            # Emails and phones of untrusted partners are kept under their source: found whatever the source.
            query = query.where(
                sa.exists().where(
                    i.c.customer_id == c.c.id,
                    i.c.kind == kind,
                    i.c.external_id == value,
                    *([i.c.source == src] if src is not None else []),
                )
            )
    if source is not None and external_id is None:
        query = query.where(sa.exists().where(i.c.customer_id == c.c.id, i.c.kind == "source", i.c.source == source))
    if attribute is not None:
        prop = customer_property
        query = query.where(
            sa.exists().where(
                prop.c.customer_id == c.c.id,
                prop.c.kind == "attribute",
                prop.c.key == attribute[0],
                prop.c.value.op("#>>")(sa.literal_column("'{}'")) == attribute[1],
            )
        )
    if partner is not None:
        query = query.where(sa.literal(partner) == sa.any_(c.c.partners))
    if min_purchase_count is not None:
        query = query.where(c.c.purchase_count >= min_purchase_count)
    if max_purchase_count is not None:
        query = query.where(c.c.purchase_count <= max_purchase_count)
    if min_total_spend is not None or max_total_spend is not None:
        s = customer_spend
        spend = sa.exists().where(s.c.customer_id == c.c.id, s.c.currency == currency)
        if min_total_spend is not None:
            spend = spend.where(s.c.total_spend >= min_total_spend)
        if max_total_spend is not None:
            spend = spend.where(s.c.total_spend <= max_total_spend)
        query = query.where(spend)
    if last_seen_after is not None:
        query = query.where(c.c.last_seen_at >= last_seen_after)
    if last_seen_before is not None:
        query = query.where(c.c.last_seen_at < last_seen_before)
    if preferred_channel is not None:
        query = query.where(c.c.preferred_channel == preferred_channel)
    if after is not None:
        query = query.where(c.c.id > after)
    return list((await session.execute(query.order_by(c.c.id).limit(limit))).all())


async def timeline(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int | None,
    types: list[str] | None = None,
    channel: str | None = None,
    partner: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[sa.Row]:
    """Newest first; `before` is the (occurred_at, id) of the last entry of the previous page."""
    a = activity
    query = sa.select(a).where(a.c.customer_id == customer_id)
    if types:
        query = query.where(a.c.type.in_(types))
    if channel is not None:
        query = query.where(a.c.channel == channel)
    if partner is not None:
        query = query.where(a.c.source == partner)
    if since is not None:
        query = query.where(a.c.occurred_at >= since)
    if until is not None:
        query = query.where(a.c.occurred_at < until)
    if before is not None:
        query = query.where(sa.tuple_(a.c.occurred_at, a.c.id) < sa.tuple_(sa.literal(before[0]), sa.literal(before[1])))
    query = query.order_by(a.c.occurred_at.desc(), a.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).all())


async def export_rows(session: AsyncSession, customer_id: uuid.UUID) -> dict[str, list[sa.Row]]:
    async def rows(query: sa.Select) -> list[sa.Row]:
        return list((await session.execute(query)).all())

    m = customer_merge
    return {
        "purchases": await rows(
            sa.select(purchase).where(purchase.c.customer_id == customer_id).order_by(purchase.c.occurred_at)
        ),
        "adjustments": await rows(
            sa.select(purchase_adjustment)
            .where(purchase_adjustment.c.customer_id == customer_id)
            .order_by(purchase_adjustment.c.occurred_at)
        ),
        "deals": await rows(sa.select(deal).where(deal.c.customer_id == customer_id).order_by(deal.c.occurred_at)),
        "merges": await rows(
            sa.select(m.c.id, m.c.survivor_id, m.c.merged_id, m.c.reason, m.c.merged_at, m.c.undone_at)
            .where(sa.or_(m.c.survivor_id == customer_id, m.c.merged_id == customer_id))
            .order_by(m.c.merged_at)
        ),
    }


MERGED_INTO = sa.text("""
WITH RECURSIVE folded(id) AS (
    SELECT id FROM interaction.customer WHERE id = ANY(CAST(:ids AS uuid[]))
    UNION
    SELECT c.id FROM interaction.customer c JOIN folded ON c.merged_into = folded.id
)
SELECT id FROM folded
""")


async def folded_ids(session: AsyncSession, live_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """These customers and every customer merged into them (their rows now carry the survivor's id)."""
    return list((await session.execute(MERGED_INTO, {"ids": live_ids})).scalars())


# --- erasure: the customer's PII values, the rows that keep facts (redacted), and what is deleted -------------
async def pii_of(session: AsyncSession, ids: list[uuid.UUID]) -> tuple[list[sa.Row], list[object]]:
    identifiers = (
        await session.execute(
            sa.select(customer_identifier.c.kind, customer_identifier.c.external_id).where(
                customer_identifier.c.customer_id == sa.any_(_uuids(ids))
            )
        )
    ).all()
    p = customer_property
    attributes = (
        (await session.execute(sa.select(p.c.value).where(p.c.customer_id == sa.any_(_uuids(ids)), p.c.kind == "attribute")))
        .scalars()
        .all()
    )
    return list(identifiers), list(attributes)


def _uuids(ids: list[uuid.UUID]) -> sa.BindParameter:
    return sa.bindparam("ids", ids, type_=ARRAY(UUID(as_uuid=True)))


async def activity_of(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    a = activity
    return list(
        (
            await session.execute(
                sa.select(a.c.id, a.c.type, a.c.event_id, a.c.channel, a.c.data).where(a.c.customer_id == sa.any_(_uuids(ids)))
            )
        ).all()
    )


async def purchases_of(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    p = purchase
    return list(
        (
            await session.execute(
                sa.select(p.c.id, p.c.order_id, p.c.event_id, p.c.channel, p.c.line_items).where(
                    p.c.customer_id == sa.any_(_uuids(ids))
                )
            )
        ).all()
    )


async def adjustments_of(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    a = purchase_adjustment
    return list(
        (
            await session.execute(sa.select(a.c.id, a.c.order_id, a.c.event_id).where(a.c.customer_id == sa.any_(_uuids(ids))))
        ).all()
    )


async def deals_of(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    d = deal
    return list(
        (
            await session.execute(
                sa.select(d.c.source, d.c.deal_id, d.c.pipeline, d.c.stage).where(d.c.customer_id == sa.any_(_uuids(ids)))
            )
        ).all()
    )


async def channels_of(session: AsyncSession, ids: list[uuid.UUID]) -> list[sa.Row]:
    c = customer
    return list(
        (
            await session.execute(
                sa.select(c.c.id, c.c.preferred_channel, c.c.channel_use, c.c.last_touchpoints).where(
                    c.c.id == sa.any_(_uuids(ids))
                )
            )
        ).all()
    )


async def _update(session: AsyncSession, sql: str, rows: list[dict], arrays: dict[str, str]) -> None:
    if rows:
        await session.execute(sa.text(sql), {name: [r[key] for r in rows] for name, key in arrays.items()})


async def update_activity(session: AsyncSession, rows: list[dict]) -> None:
    await _update(
        session,
        """
        UPDATE interaction.activity a SET event_id = v.event_id, channel = v.channel, data = CAST(v.data AS jsonb),
            updated_at = now()
        FROM unnest(CAST(:ids AS uuid[]), CAST(:event_ids AS text[]), CAST(:channels AS text[]),
                    CAST(:data AS text[])) AS v(id, event_id, channel, data)
        WHERE a.id = v.id""",
        rows,
        {"ids": "id", "event_ids": "event_id", "channels": "channel", "data": "data"},
    )


async def update_purchases(session: AsyncSession, rows: list[dict]) -> None:
    await _update(
        session,
        """
        UPDATE interaction.purchase p SET order_id = v.order_id, event_id = v.event_id, channel = v.channel,
            line_items = CAST(v.line_items AS jsonb), updated_at = now()
        FROM unnest(CAST(:ids AS uuid[]), CAST(:order_ids AS text[]), CAST(:event_ids AS text[]),
                    CAST(:channels AS text[]), CAST(:line_items AS text[]))
             AS v(id, order_id, event_id, channel, line_items)
        WHERE p.id = v.id""",
        rows,
        {"ids": "id", "order_ids": "order_id", "event_ids": "event_id", "channels": "channel", "line_items": "line_items"},
    )


async def update_adjustments(session: AsyncSession, rows: list[dict]) -> None:
    await _update(
        session,
        """
        UPDATE interaction.purchase_adjustment a SET order_id = v.order_id, event_id = v.event_id, reason = NULL,
            updated_at = now()
        FROM unnest(CAST(:ids AS uuid[]), CAST(:order_ids AS text[]), CAST(:event_ids AS text[]))
             AS v(id, order_id, event_id)
        WHERE a.id = v.id""",
        rows,
        {"ids": "id", "order_ids": "order_id", "event_ids": "event_id"},
    )


async def update_deals(session: AsyncSession, rows: list[dict]) -> None:
    await _update(
        session,
        """
        UPDATE interaction.deal d SET deal_id = v.deal_id, pipeline = v.pipeline, stage = v.stage, owner = NULL,
            lost_reason = NULL, updated_at = now()
        FROM unnest(CAST(:sources AS text[]), CAST(:old_ids AS text[]), CAST(:deal_ids AS text[]),
                    CAST(:pipelines AS text[]), CAST(:stages AS text[])) AS v(source, old_id, deal_id, pipeline, stage)
        WHERE d.source = v.source AND d.deal_id = v.old_id""",
        rows,
        {"sources": "source", "old_ids": "old_id", "deal_ids": "deal_id", "pipelines": "pipeline", "stages": "stage"},
    )


async def update_channels(session: AsyncSession, rows: list[dict]) -> None:
    await _update(
        session,
        """
        UPDATE interaction.customer c SET preferred_channel = v.preferred_channel,
            channel_use = CAST(v.channel_use AS jsonb), last_touchpoints = CAST(v.last_touchpoints AS jsonb),
            updated_at = now()
        FROM unnest(CAST(:ids AS uuid[]), CAST(:channels AS text[]), CAST(:uses AS text[]), CAST(:touchpoints AS text[]))
             AS v(id, preferred_channel, channel_use, last_touchpoints)
        WHERE c.id = v.id""",
        rows,
        {"ids": "id", "channels": "preferred_channel", "uses": "channel_use", "touchpoints": "last_touchpoints"},
    )


# PII out, anonymous facts kept (redacted by erasure.py before these run): identifiers and properties go.
ERASE_STATEMENTS = [
    sa.text("DELETE FROM interaction.customer_identifier WHERE customer_id = ANY(CAST(:ids AS uuid[]))"),
    sa.text("DELETE FROM interaction.customer_property WHERE customer_id = ANY(CAST(:ids AS uuid[]))"),
    sa.text("""UPDATE interaction.customer_merge SET snapshot = '[]'::jsonb, reason = 'erased', updated_at = now()
               WHERE survivor_id = ANY(CAST(:ids AS uuid[])) OR merged_id = ANY(CAST(:ids AS uuid[]))"""),
    sa.text("""UPDATE interaction.customer SET erased_at = coalesce(erased_at, now()), updated_at = now()
               WHERE id = ANY(CAST(:ids AS uuid[]))"""),
]


async def delete_pii(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    for statement in ERASE_STATEMENTS:
        await session.execute(statement, {"ids": ids})
