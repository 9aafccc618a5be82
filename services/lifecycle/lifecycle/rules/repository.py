"""Queries of the rule-set versions."""

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.rules.engine import RuleParameters
from lifecycle.rules.models import replay_run, rule_set


@dataclass(frozen=True, slots=True)
class RuleSetVersion:
    version: int
    parameters: RuleParameters
    description: str
    created_by: str | None
    created_at: datetime
    activated_at: datetime


def _from_row(r: sa.Row) -> RuleSetVersion:
    return RuleSetVersion(
        r.version, RuleParameters.model_validate(r.parameters), r.description, r.created_by, r.created_at, r.activated_at
    )


async def active(session: AsyncSession) -> RuleSetVersion:
    """The rule set in force: the most recently activated version."""
    row = (
        await session.execute(sa.select(rule_set).order_by(rule_set.c.activated_at.desc(), rule_set.c.version.desc()).limit(1))
    ).one()
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
    await session.execute(
        sa.insert(rule_set).values(
            version=version,
            parameters=parameters.model_dump(mode="json"),
            description=description,
            created_by=created_by,
            activated_at=sa.func.clock_timestamp(),
        )
    )
    return version


async def activate(session: AsyncSession, version: int) -> None:
    await session.execute(
        sa.update(rule_set)
        .where(rule_set.c.version == version)
        .values(activated_at=sa.func.clock_timestamp(), updated_at=sa.func.now())
    )


# Replay runs (executed by runs.Runner).
UNFINISHED = ("queued", "running")


async def create_run(session: AsyncSession, version: int) -> uuid.UUID:
    """A queued run for `version`; unfinished older runs are superseded."""
    await session.execute(
        sa.update(replay_run)
        .where(replay_run.c.status.in_(UNFINISHED))
        .values(status="superseded", finished_at=sa.func.now(), updated_at=sa.func.now())
    )
    run_id = uuid.uuid4()
    total = (
        await session.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT customer_id FROM lifecycle.customer_fact "
                "UNION SELECT customer_id FROM lifecycle.customer_stage) c"
            )
        )
    ).scalar_one()
    await session.execute(
        sa.insert(replay_run).values(id=run_id, rule_set_version=version, status="queued", customers_total=total)
    )
    return run_id


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> sa.RowMapping | None:
    return (await session.execute(sa.select(replay_run).where(replay_run.c.id == run_id))).mappings().first()


async def page_runs(session: AsyncSession, limit: int) -> list[sa.RowMapping]:
    q = sa.select(replay_run).order_by(replay_run.c.created_at.desc(), replay_run.c.id).limit(limit)
    return list((await session.execute(q)).mappings())
