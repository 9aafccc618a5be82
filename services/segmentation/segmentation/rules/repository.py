"""Rule segments' queries: the segment rows, their versions and summaries, and the counts a rule selects."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def latest_run_id(session: AsyncSession, family: str) -> uuid.UUID | None:
    return (
        await session.execute(
            sa.text("""
        SELECT run_id FROM segmentation.segmentation_run WHERE family = :family AND status = 'succeeded'
        ORDER BY finished_at DESC LIMIT 1"""),
            {"family": family},
        )
    ).scalar()


async def keep_version(session: AsyncSession, segment_id: uuid.UUID) -> None:
    await session.execute(
        sa.text("""
        INSERT INTO segmentation.segment_version (segment_id, version, name, description, definition)
        SELECT segment_id, version, name, description, definition FROM segmentation.segment
        WHERE segment_id = :id"""),
        {"id": segment_id},
    )


async def summarise(session: AsyncSession, segment_ids: list) -> None:
    if not segment_ids:
        return
    await session.execute(
        sa.text("""
        UPDATE segmentation.segment s SET summary = jsonb_build_object('size', q.n, 'evaluated_at', now()),
            updated_at = now()
        FROM (SELECT sg.segment_id, count(m.customer_id) AS n FROM unnest(CAST(:ids AS uuid[])) AS sg(segment_id)
              LEFT JOIN segmentation.segment_membership m ON m.segment_id = sg.segment_id AND m.left_at IS NULL
              GROUP BY sg.segment_id) q
        WHERE s.segment_id = q.segment_id"""),
        {"ids": segment_ids},
    )


async def count_and_sample(session: AsyncSession, matching_sql: str, params: dict) -> tuple[int, list[uuid.UUID]]:
    """How many customers a compiled rule selects, and the first ten of them."""
    count = (await session.execute(sa.text(f"SELECT count(*) FROM ({matching_sql}) q"), params)).scalar_one()
    sample = (await session.execute(sa.text(f"{matching_sql} ORDER BY a.customer_id LIMIT 10"), params)).scalars().all()
    return count, list(sample)


async def insert_rule_segment(
    session: AsyncSession, segment_id: uuid.UUID, key: str, name: str, description: str | None, definition: str
) -> uuid.UUID | None:
    """The new segment's id, or None when its key is already taken."""
    return (
        await session.execute(
            sa.text("""
        INSERT INTO segmentation.segment (segment_id, key, kind, family, name, description, definition)
        VALUES (:id, :key, 'rule', :key, :name, :description, CAST(:definition AS jsonb))
        ON CONFLICT (key) DO NOTHING RETURNING segment_id"""),
            {"id": segment_id, "key": key, "name": name, "description": description, "definition": definition},
        )
    ).scalar()


async def lock_segment(session: AsyncSession, segment_id: uuid.UUID) -> dict | None:
    """The segment's row, locked until the transaction ends."""
    row = (
        (
            await session.execute(
                sa.text("""
        SELECT segment_id, key, kind, name, description, definition, version, archived_at FROM segmentation.segment
        WHERE segment_id = :id FOR UPDATE"""),
                {"id": segment_id},
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def new_version(
    session: AsyncSession, segment_id: uuid.UUID, *, definition: str, name: str, description: str | None
) -> int:
    return (
        await session.execute(
            sa.text("""
        UPDATE segmentation.segment SET version = version + 1, definition = CAST(:definition AS jsonb),
            name = :name, description = :description, updated_at = now()
        WHERE segment_id = :id RETURNING version"""),
            {"id": segment_id, "definition": definition, "name": name, "description": description},
        )
    ).scalar_one()


async def archive(session: AsyncSession, segment_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        sa.text("""
        UPDATE segmentation.segment SET archived_at = :now, updated_at = now() WHERE segment_id = :id"""),
        {"id": segment_id, "now": now},
    )


async def active_rules(session: AsyncSession, segment_ids: list | None) -> Sequence[sa.Row]:
    """The rule segments still evaluated (not archived): all, or those of `segment_ids`."""
    query = (
        "SELECT segment_id, key, name, kind, definition, version FROM segmentation.segment"
        " WHERE kind = 'rule' AND archived_at IS NULL"
    )
    params: dict[str, Any] = {}
    if segment_ids is not None:
        query += " AND segment_id = ANY(CAST(:ids AS uuid[]))"
        params["ids"] = segment_ids
    return (await session.execute(sa.text(query), params)).all()
