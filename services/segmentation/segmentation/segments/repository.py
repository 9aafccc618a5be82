import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import NotFound


async def resolve_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """A merged-away id answers as its survivor."""
    survivor = (await session.execute(sa.text(
        "SELECT survivor_id FROM segmentation.customer_alias WHERE merged_id = :id"), {"id": customer_id})).scalar()
    return survivor or customer_id


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> dict:
    row = (await session.execute(sa.text("SELECT * FROM segmentation.segment WHERE segment_id = :id"),
                                 {"id": segment_id})).mappings().first()
    if row is None:
        raise NotFound(f"no segment {segment_id}")
    return dict(row)


async def list_segments(session: AsyncSession, *, kind: str | None, family: str | None, after: str | None,
                        limit: int) -> list[dict]:
    rows = await session.execute(sa.text("""
        SELECT * FROM segmentation.segment
        WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) AND (CAST(:family AS text) IS NULL OR family = :family)
          AND (CAST(:after AS text) IS NULL OR key > :after)
        ORDER BY key LIMIT :limit"""), {"kind": kind, "family": family, "after": after, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def members(session: AsyncSession, segment_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> list:
    rows = await session.execute(sa.text("""
        SELECT customer_id, entered_at FROM segmentation.segment_membership
        WHERE segment_id = :id AND left_at IS NULL AND (CAST(:after AS uuid) IS NULL OR customer_id > :after)
        ORDER BY customer_id LIMIT :limit"""), {"id": segment_id, "after": after, "limit": limit})
    return rows.all()


async def history(session: AsyncSession, customer_id: uuid.UUID, after: int | None, limit: int) -> list:
    rows = await session.execute(sa.text("""
        SELECT m.membership_id, m.segment_id, s.key AS segment_key, s.name AS segment_name, s.kind, m.entered_at,
               m.left_at, m.entered_run_id, m.left_run_id
        FROM segmentation.segment_membership m JOIN segmentation.segment s ON s.segment_id = m.segment_id
        WHERE m.customer_id = :id AND (CAST(:after AS bigint) IS NULL OR m.membership_id < :after)
        ORDER BY m.membership_id DESC LIMIT :limit"""), {"id": customer_id, "after": after, "limit": limit})
    return rows.mappings().all()


async def customer_known(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    return (await session.execute(sa.text(
        "SELECT 1 FROM segmentation.customer_aggregate WHERE customer_id = :id"), {"id": customer_id})).first() is not None
