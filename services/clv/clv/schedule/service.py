"""Every `refit_interval_s`, refit and rescore each currency whose newest fit is older than the interval.

The check "newest fit older than the interval" makes replicas agree without a lock: a replica that wakes
after another has just refitted finds a fresh fit and does nothing; two that wake together cannot both create
a fit (one unfinished fit per currency), the loser skips the currency.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.jobs import JobInProgress
from shared.messaging.outbox import Outbox
from shared.problems import DomainError

from clv.fits import service as fits
from clv.fits.schemas import FitCreate
from clv.scoring import service as scoring
from clv.scoring.schemas import ScoringCreate
from clv.settings import ClvSettings

log = logging.getLogger(__name__)

DUE = sa.text("""
SELECT c.currency FROM (SELECT DISTINCT currency FROM clv.purchase) c
WHERE NOT EXISTS (SELECT 1 FROM clv.model_fit f WHERE f.currency = c.currency AND f.created_at > :since)
ORDER BY c.currency
""")


async def refit_due(session_factory: async_sessionmaker[AsyncSession], outbox: Outbox, settings: ClvSettings) -> list[str]:
    """One round: fit and score every currency that is due; returns the currencies refitted."""
    interval = timedelta(seconds=settings.refit_interval_s)
    async with session_factory() as session:
        due = list((await session.execute(DUE, {"since": datetime.now(UTC) - interval})).scalars())
    for currency in due:
        try:
            async with session_factory.begin() as session:
                row = await fits.create_fit(session, FitCreate(model=settings.refit_model, currency=currency), settings)
        except JobInProgress:
            continue  # another replica (or a user) is fitting this currency right now
        await fits.run_fit(session_factory, row.id)
        try:
            async with session_factory.begin() as session:
                run = await scoring.create_scoring(session, ScoringCreate(currency=currency, fit_id=row.id), settings)
        except DomainError as exc:
            log.warning("scheduled refit of %s not scored: %s", currency, exc.detail)
            continue
        await scoring.run_scoring(session_factory, outbox, settings, run.id)
    return due


async def refit_loop(session_factory: async_sessionmaker[AsyncSession], outbox: Outbox, settings: ClvSettings) -> None:
    """Every `refit_interval_s`, one round (runs until the runtime cancels it; a fit cut short is resumed by
    the recovery loop of a replica once its lease lapses)."""
    while True:
        await asyncio.sleep(settings.refit_interval_s)
        try:
            await refit_due(session_factory, outbox, settings)
        except Exception:  # the schedule survives a failed round; the next one retries
            log.exception("scheduled refit round failed")
