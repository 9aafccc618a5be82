"""Queries of export jobs and their files (the executor in service.py decides when to run them)."""

import uuid
from typing import cast

import sqlalchemy as sa
from sqlalchemy import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from shared.jobs import REPLICA


async def get(session: AsyncSession, export_id: uuid.UUID) -> dict | None:
    row = (
        (await session.execute(sa.text("SELECT * FROM segmentation.segment_export WHERE export_id = :id"), {"id": export_id}))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def unfinished(session: AsyncSession, segment_id: uuid.UUID, kind: str) -> sa.Row | None:
    return (
        await session.execute(
            sa.text("""
        SELECT export_id, status FROM segmentation.segment_export
        WHERE segment_id = :sid AND kind = :kind AND status IN ('queued', 'running') LIMIT 1"""),
            {"sid": segment_id, "kind": kind},
        )
    ).first()


async def insert(session: AsyncSession, segment_id: uuid.UUID, kind: str) -> dict:
    row = (
        (
            await session.execute(
                sa.text("""
        INSERT INTO segmentation.segment_export (export_id, segment_id, kind, status)
        VALUES (:id, :sid, :kind, 'queued') RETURNING *"""),
                {"id": uuid.uuid4(), "sid": segment_id, "kind": kind},
            )
        )
        .mappings()
        .one()
    )
    return dict(row)


async def queued_ids(session: AsyncSession) -> list[uuid.UUID]:
    return list(
        (
            await session.execute(
                sa.text("SELECT export_id FROM segmentation.segment_export WHERE status = 'queued' ORDER BY created_at")
            )
        ).scalars()
    )


async def restart(session: AsyncSession, export_id: uuid.UUID, header: bytes) -> dict:
    """A claimed export starts over: its chunks from an earlier attempt are cleared, the header is chunk 0."""
    await session.execute(sa.text("DELETE FROM segmentation.segment_export_chunk WHERE export_id = :id"), {"id": export_id})
    row = (
        (
            await session.execute(
                sa.text("""
        UPDATE segmentation.segment_export SET attempts = attempts + 1, rows_written = 0, rows_total = NULL,
            error = NULL, started_at = now(), updated_at = now()
        WHERE export_id = :id RETURNING *"""),
                {"id": export_id},
            )
        )
        .mappings()
        .one()
    )
    await session.execute(
        sa.text("INSERT INTO segmentation.segment_export_chunk (export_id, chunk_no, data) VALUES (:id, 0, :data)"),
        {"id": export_id, "data": header},
    )
    return dict(row)


async def set_total(session: AsyncSession, export_id: uuid.UUID, total: int) -> None:
    await session.execute(
        sa.text("UPDATE segmentation.segment_export SET rows_total = :n WHERE export_id = :id"), {"id": export_id, "n": total}
    )


async def append_chunk(session: AsyncSession, export_id: uuid.UUID, chunk_no: int, rows: int, data: bytes) -> bool:
    """One chunk and the progress it makes, if this replica still holds the export (False: it lost the lease, or
    the export was deleted by an erasure). The UPDATE locks the export row first, so an erasure deleting the
    export waits for this chunk and then removes it with the rest."""
    held = (
        await session.execute(
            sa.text("""
        UPDATE segmentation.segment_export SET rows_written = rows_written + :n, updated_at = now()
        WHERE export_id = :id AND status = 'running' AND claimed_by = :owner RETURNING export_id"""),
            {"id": export_id, "n": rows, "owner": REPLICA},
        )
    ).first()
    if held is None:
        return False
    await session.execute(
        sa.text("INSERT INTO segmentation.segment_export_chunk (export_id, chunk_no, data) VALUES (:id, :no, :data)"),
        {"id": export_id, "no": chunk_no, "data": data},
    )
    return True


async def finish(session: AsyncSession, export_id: uuid.UUID, status: str, error: str | None = None) -> bool:
    row = (
        await session.execute(
            sa.text("""
        UPDATE segmentation.segment_export SET status = :status, error = :error, finished_at = now(),
            updated_at = now(), lease_until = NULL
        WHERE export_id = :id AND status = 'running' AND claimed_by = :owner RETURNING export_id"""),
            {"id": export_id, "status": status, "error": error, "owner": REPLICA},
        )
    ).first()
    return row is not None


async def prune(session: AsyncSession, segment_id: uuid.UUID, kind: str, keep: int) -> None:
    """Finished exports of a segment and kind beyond the newest `keep`."""
    await session.execute(
        sa.text("""
        DELETE FROM segmentation.segment_export WHERE export_id IN (
            SELECT export_id FROM segmentation.segment_export
            WHERE segment_id = :sid AND kind = :kind AND status IN ('succeeded', 'failed')
            ORDER BY finished_at DESC OFFSET :keep)"""),
        {"sid": segment_id, "kind": kind, "keep": keep},
    )


async def expire(session: AsyncSession, older_than_s: float) -> int:
    """Finished exports older than the retention (their files hold customer ids: not kept for ever)."""
    # A DELETE gives a CursorResult (its rowcount); the async session's signature says only Result.
    result = cast(
        CursorResult,
        await session.execute(
            sa.text("""
        DELETE FROM segmentation.segment_export
        WHERE status IN ('succeeded', 'failed') AND finished_at < now() - make_interval(secs => :s)"""),
            {"s": older_than_s},
        ),
    )
    return result.rowcount or 0


async def chunks(session: AsyncSession, export_id: uuid.UUID, after: int, limit: int) -> list[sa.Row]:
    return list(
        (
            await session.execute(
                sa.text("""
        SELECT chunk_no, data FROM segmentation.segment_export_chunk
        WHERE export_id = :id AND chunk_no > :after ORDER BY chunk_no LIMIT :limit"""),
                {"id": export_id, "after": after, "limit": limit},
            )
        ).all()
    )
