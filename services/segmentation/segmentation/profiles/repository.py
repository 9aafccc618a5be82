"""Reads of what segmentation knows of one customer (the projection writes it)."""

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def aggregate(session: AsyncSession, customer_id: uuid.UUID) -> sa.RowMapping | None:
    return (
        (
            await session.execute(
                sa.text("SELECT * FROM segmentation.customer_aggregate WHERE customer_id = :id"), {"id": customer_id}
            )
        )
        .mappings()
        .first()
    )


async def currency_summaries(session: AsyncSession, customer_id: uuid.UUID) -> list[sa.RowMapping]:
    return list(
        (
            await session.execute(
                sa.text("SELECT * FROM segmentation.purchase_summary WHERE customer_id = :id ORDER BY currency"),
                {"id": customer_id},
            )
        ).mappings()
    )


async def rfm_scores(session: AsyncSession, run_id: uuid.UUID, customer_id: uuid.UUID) -> sa.Row | None:
    """The customer's R, F, M scores and segment key in an RFM run (None: not in it, or its results pruned)."""
    return (
        await session.execute(
            sa.text("""
        SELECT r.r, r.f, r.m, s.key FROM segmentation.run_result r
        JOIN segmentation.segment s ON s.segment_id = r.segment_id
        WHERE r.run_id = :run AND r.customer_id = :id"""),
            {"run": run_id, "id": customer_id},
        )
    ).first()


async def current_segments(session: AsyncSession, customer_id: uuid.UUID) -> list[sa.RowMapping]:
    return list(
        (
            await session.execute(
                sa.text("""
        SELECT s.segment_id, s.key, s.name, s.kind, m.entered_at FROM segmentation.segment_membership m
        JOIN segmentation.segment s ON s.segment_id = m.segment_id
        WHERE m.customer_id = :id AND m.left_at IS NULL ORDER BY s.key"""),
                {"id": customer_id},
            )
        ).mappings()
    )
