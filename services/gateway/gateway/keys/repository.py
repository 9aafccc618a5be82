import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.keys.models import api_key

MARK_USED = sa.text("""
UPDATE gateway.api_key k SET last_used_at = greatest(k.last_used_at, v.used_at)
FROM unnest(CAST(:ids AS uuid[]), CAST(:used AS timestamptz[])) AS v(id, used_at)
WHERE k.id = v.id
""")


async def insert(session: AsyncSession, row: dict) -> sa.Row:
    return (await session.execute(sa.insert(api_key).values(**row).returning(*api_key.c))).one()


async def by_hash(session: AsyncSession, key_hash: bytes) -> sa.Row | None:
    return (await session.execute(sa.select(api_key).where(api_key.c.key_hash == key_hash))).one_or_none()


async def by_id(session: AsyncSession, key_id: uuid.UUID) -> sa.Row | None:
    return (await session.execute(sa.select(api_key).where(api_key.c.id == key_id))).one_or_none()


async def page(
    session: AsyncSession, *, role: str | None, include_revoked: bool, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.Row]:
    q = sa.select(api_key).order_by(api_key.c.created_at, api_key.c.id).limit(limit)
    if role is not None:
        q = q.where(api_key.c.role == role)
    if not include_revoked:
        q = q.where(api_key.c.revoked_at.is_(None))
    if after is not None:
        q = q.where(sa.tuple_(api_key.c.created_at, api_key.c.id) > sa.tuple_(*after))
    return list((await session.execute(q)).all())


async def revoke(session: AsyncSession, key_id: uuid.UUID) -> sa.Row | None:
    q = (
        sa.update(api_key)
        .where(api_key.c.id == key_id)
        .values(revoked_at=sa.func.coalesce(api_key.c.revoked_at, sa.func.now()), updated_at=sa.func.now())
        .returning(*api_key.c)
    )
    return (await session.execute(q)).one_or_none()


async def mark_used(session: AsyncSession, used: dict[uuid.UUID, datetime]) -> None:
    await session.execute(MARK_USED, {"ids": list(used), "used": list(used.values())})
