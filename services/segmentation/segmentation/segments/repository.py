import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import NotFound


async def resolve_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """A merged-away id answers as its survivor."""
    survivor = (
        await session.execute(
            sa.text("SELECT survivor_id FROM segmentation.customer_alias WHERE merged_id = :id"), {"id": customer_id}
        )
    ).scalar()
    return survivor or customer_id


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> dict:
    row = (
        (await session.execute(sa.text("SELECT * FROM segmentation.segment WHERE segment_id = :id"), {"id": segment_id}))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no segment {segment_id}")
    return dict(row)


async def list_segments(
    session: AsyncSession, *, kind: str | None, family: str | None, after: str | None, limit: int, include_archived: bool = False
) -> list[dict]:
    rows = await session.execute(
        sa.text("""
        SELECT * FROM segmentation.segment
        WHERE (CAST(:kind AS text) IS NULL OR kind = :kind) AND (CAST(:family AS text) IS NULL OR family = :family)
          AND (CAST(:after AS text) IS NULL OR key > :after) AND (:archived OR archived_at IS NULL)
        ORDER BY key LIMIT :limit"""),
        {"kind": kind, "family": family, "after": after, "limit": limit, "archived": include_archived},
    )
    return [dict(r) for r in rows.mappings()]


async def versions(session: AsyncSession, segment_id: uuid.UUID) -> Sequence[sa.RowMapping]:
    rows = await session.execute(
        sa.text("""
        SELECT version, name, description, definition, created_at FROM segmentation.segment_version
        WHERE segment_id = :id ORDER BY version DESC"""),
        {"id": segment_id},
    )
    return rows.mappings().all()


async def members(session: AsyncSession, segment_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> Sequence[sa.RowMapping]:
    """Current members with their value, tier and stage (segmentation's copies of clv's and lifecycle's)."""
    rows = await session.execute(
        sa.text("""
        SELECT m.customer_id, m.entered_at, m.entered_version, a.clv, a.clv_currency, a.value_tier, a.stage
        FROM segmentation.segment_membership m
        LEFT JOIN segmentation.customer_aggregate a ON a.customer_id = m.customer_id
        WHERE m.segment_id = :id AND m.left_at IS NULL AND (CAST(:after AS uuid) IS NULL OR m.customer_id > :after)
        ORDER BY m.customer_id LIMIT :limit"""),
        {"id": segment_id, "after": after, "limit": limit},
    )
    return rows.mappings().all()


async def segment_history(session: AsyncSession, segment_id: uuid.UUID, after: int | None, limit: int) -> Sequence[sa.RowMapping]:
    """Entries and exits of one segment, one row per membership (an exit fills `left_*`), newest first."""
    rows = await session.execute(
        sa.text("""
        SELECT membership_id, customer_id, entered_at, entered_version, entered_run_id, left_at, left_version,
               left_run_id
        FROM segmentation.segment_membership
        WHERE segment_id = :id AND (CAST(:after AS bigint) IS NULL OR membership_id < :after)
        ORDER BY membership_id DESC LIMIT :limit"""),
        {"id": segment_id, "after": after, "limit": limit},
    )
    return rows.mappings().all()


async def history(session: AsyncSession, customer_id: uuid.UUID, after: int | None, limit: int) -> Sequence[sa.RowMapping]:
    rows = await session.execute(
        sa.text("""
        SELECT m.membership_id, m.segment_id, s.key AS segment_key, s.name AS segment_name, s.kind, m.entered_at,
               m.left_at, m.entered_run_id, m.left_run_id, m.entered_version, m.left_version
        FROM segmentation.segment_membership m JOIN segmentation.segment s ON s.segment_id = m.segment_id
        WHERE m.customer_id = :id AND (CAST(:after AS bigint) IS NULL OR m.membership_id < :after)
        ORDER BY m.membership_id DESC LIMIT :limit"""),
        {"id": customer_id, "after": after, "limit": limit},
    )
    return rows.mappings().all()


async def customer_known(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    return (
        await session.execute(
            sa.text("SELECT 1 FROM segmentation.customer_aggregate WHERE customer_id = :id"), {"id": customer_id}
        )
    ).first() is not None


async def count_rows(session: AsyncSession, segment_id: uuid.UUID, current_only: bool) -> int:
    """Members (current_only) or history rows of a segment: what its export will write, as of now."""
    return (
        await session.execute(
            sa.text("""
        SELECT count(*) FROM segmentation.segment_membership
        WHERE segment_id = :id AND (NOT :current OR left_at IS NULL)"""),
            {"id": segment_id, "current": current_only},
        )
    ).scalar_one()
