"""Reads of runs and their per-customer results (the executor in service.py writes them)."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def page(
    session: AsyncSession, *, kind: str | None, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.RowMapping]:
    """Runs newest first, those after the cursor's (created_at, run_id)."""
    query = "SELECT * FROM segmentation.segmentation_run WHERE (CAST(:kind AS text) IS NULL OR kind = :kind)"
    params: dict = {"kind": kind, "limit": limit}
    if before:
        query += " AND (created_at, run_id::text) < (CAST(:ts AS timestamptz), :rid)"
        params.update(ts=before[0], rid=str(before[1]))
    return list(
        (await session.execute(sa.text(query + " ORDER BY created_at DESC, run_id::text DESC LIMIT :limit"), params)).mappings()
    )


async def has_results(session: AsyncSession, run_id: uuid.UUID) -> bool:
    """Whether the run's per-customer results are still kept (only the last few runs of a family keep them)."""
    return (
        await session.execute(sa.text("SELECT 1 FROM segmentation.run_result WHERE run_id = :id LIMIT 1"), {"id": run_id})
    ).first() is not None


async def transitions(session: AsyncSession, base_run_id: uuid.UUID, run_id: uuid.UUID) -> list[sa.Row]:
    """Customers per (segment in the base run, segment in the other run); None where a customer is in one only."""
    return list(
        (
            await session.execute(
                sa.text("""
        WITH a AS (SELECT r.customer_id, s.key, s.family FROM segmentation.run_result r
                   JOIN segmentation.segment s ON s.segment_id = r.segment_id WHERE r.run_id = :a),
             b AS (SELECT r.customer_id, s.key, s.family FROM segmentation.run_result r
                   JOIN segmentation.segment s ON s.segment_id = r.segment_id WHERE r.run_id = :b)
        SELECT a.key AS from_key, b.key AS to_key, count(*) AS n
        FROM a FULL JOIN b ON a.customer_id = b.customer_id AND a.family = b.family
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"""),
                {"a": base_run_id, "b": run_id},
            )
        ).all()
    )
