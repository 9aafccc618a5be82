"""Queries of the RFM schemes table (the service validates a scheme before it is written)."""

import json
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def insert(
    session: AsyncSession, key: str, name: str, description: str | None, segments: list[dict]
) -> sa.RowMapping | None:
    """The new scheme's row, or None when the key is taken."""
    return (
        (
            await session.execute(
                sa.text("""
        INSERT INTO segmentation.rfm_scheme (scheme_id, key, name, description, segments)
        VALUES (:id, :key, :name, :description, CAST(:segments AS jsonb))
        ON CONFLICT (key) DO NOTHING RETURNING *"""),
                {"id": uuid.uuid4(), "key": key, "name": name, "description": description, "segments": json.dumps(segments)},
            )
        )
        .mappings()
        .first()
    )


async def all_schemes(session: AsyncSession) -> list[sa.RowMapping]:
    return list((await session.execute(sa.text("SELECT * FROM segmentation.rfm_scheme ORDER BY key LIMIT 500"))).mappings())


async def get(session: AsyncSession, key: str) -> sa.RowMapping | None:
    return (await session.execute(sa.text("SELECT * FROM segmentation.rfm_scheme WHERE key = :k"), {"k": key})).mappings().first()
