"""Queries on the custom event type registry."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.event_types.models import event_type_version as t

# Versions are numbered per type under a transaction-scoped advisory lock on the name, so two admins
# registering the same type at once get versions n and n+1, never a unique violation.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('interaction.event_type:' || :name, 0))")
_INSERT = sa.text("""
INSERT INTO interaction.event_type_version (name, version, json_schema, description)
SELECT :name, coalesce(max(version), 0) + 1, CAST(:schema AS jsonb), :description
FROM interaction.event_type_version WHERE name = :name
RETURNING name, version, json_schema, description, created_at
""")


async def add_version(session: AsyncSession, name: str, schema_json: str, description: str | None) -> sa.Row:
    await session.execute(_LOCK, {"name": name})
    return (await session.execute(_INSERT, {"name": name, "schema": schema_json, "description": description})).one()


async def versions_of(session: AsyncSession, names: list[str]) -> list[sa.Row]:
    """Every version of these types, oldest first."""
    if not names:
        return []
    return list(await session.execute(sa.select(t).where(t.c.name.in_(names)).order_by(t.c.name, t.c.version)))


async def all_versions(session: AsyncSession) -> list[sa.Row]:
    return list(await session.execute(sa.select(t).order_by(t.c.name, t.c.version)))


async def names(session: AsyncSession) -> list[str]:
    return list((await session.execute(sa.select(t.c.name).distinct().order_by(t.c.name))).scalars())
