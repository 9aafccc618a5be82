"""Queries of the rule-set versions."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.rules.engine import RuleParameters
from lifecycle.rules.models import rule_set


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    version: int
    parameters: RuleParameters
    description: str
    created_by: str | None
    created_at: datetime
    activated_at: datetime


def _from_row(r: sa.Row) -> RuleSetVersion:
    return RuleSetVersion(r.version, RuleParameters.model_validate(r.parameters), r.description, r.created_by,
                          r.created_at, r.activated_at)


async def active(session: AsyncSession) -> RuleSetVersion:
    """The rule set in force: the most recently activated version."""
    row = (await session.execute(
        sa.select(rule_set).order_by(rule_set.c.activated_at.desc(), rule_set.c.version.desc()).limit(1))).one()
    return _from_row(row)


async def get(session: AsyncSession, version: int) -> RuleSetVersion | None:
    row = (await session.execute(sa.select(rule_set).where(rule_set.c.version == version))).first()
    return _from_row(row) if row else None


async def page(session: AsyncSession, before: int | None, limit: int) -> list[RuleSetVersion]:
    q = sa.select(rule_set).order_by(rule_set.c.version.desc()).limit(limit)
    if before is not None:
        q = q.where(rule_set.c.version < before)
    return [_from_row(r) for r in await session.execute(q)]


async def insert(session: AsyncSession, parameters: RuleParameters, description: str, created_by: str | None) -> int:
    # Versions are numbered under a lock so two concurrent saves cannot take the same number.
    await session.execute(sa.text("LOCK TABLE lifecycle.rule_set IN SHARE ROW EXCLUSIVE MODE"))
    version = (await session.execute(sa.select(sa.func.coalesce(sa.func.max(rule_set.c.version), 0) + 1))).scalar_one()
    await session.execute(sa.insert(rule_set).values(
        version=version, parameters=parameters.model_dump(mode="json"), description=description,
        created_by=created_by, activated_at=sa.func.clock_timestamp()))
    return version


async def activate(session: AsyncSession, version: int) -> None:
    await session.execute(sa.update(rule_set).where(rule_set.c.version == version)
                          .values(activated_at=sa.func.clock_timestamp(), updated_at=sa.func.now()))
