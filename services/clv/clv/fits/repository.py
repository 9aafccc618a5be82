import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from clv.fits.models import model_fit


async def insert_fit(session: AsyncSession, values: dict[str, Any]) -> sa.Row:
    return (await session.execute(sa.insert(model_fit).values(**values).returning(model_fit))).one()


async def get_fit(session: AsyncSession, fit_id: uuid.UUID) -> sa.Row | None:
    return (await session.execute(sa.select(model_fit).where(model_fit.c.id == fit_id))).one_or_none()


async def unfinished_fit(session: AsyncSession, currency: str) -> sa.Row | None:
    return (
        await session.execute(
            sa.select(model_fit).where(model_fit.c.currency == currency, model_fit.c.status.in_(("queued", "running")))
        )
    ).first()


async def update_fit(session: AsyncSession, fit_id: uuid.UUID, **values: Any) -> None:
    await session.execute(sa.update(model_fit).where(model_fit.c.id == fit_id).values(updated_at=sa.func.now(), **values))


async def list_fits(
    session: AsyncSession, *, currency: str | None, model: str | None, status: str | None, before_version: int | None, limit: int
) -> list[sa.Row]:
    t = model_fit
    q = sa.select(t).order_by(t.c.version.desc()).limit(limit)
    if currency:
        q = q.where(t.c.currency == currency)
    if model:
        q = q.where(t.c.model == model)
    if status:
        q = q.where(t.c.status == status)
    if before_version is not None:
        q = q.where(t.c.version < before_version)
    return list((await session.execute(q)).all())


async def latest_succeeded(
    session: AsyncSession, currency: str, model: str | None = None, converged_only: bool = False
) -> list[sa.Row]:
    """The newest succeeded fit per model (or of one model) for a currency."""
    t = model_fit
    q = sa.select(t).where(t.c.currency == currency, t.c.status == "succeeded").order_by(t.c.version.desc())
    if model:
        q = q.where(t.c.model == model)
    if converged_only:
        q = q.where(t.c.transactions["converged"].as_boolean().is_(True))
    newest: dict[str, sa.Row] = {}
    for row in (await session.execute(q)).all():  # a handful of versions per currency
        newest.setdefault(row.model, row)
    return list(newest.values())
