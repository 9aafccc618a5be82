"""Composition root of the clv service."""

import asyncio

from fastapi import FastAPI

from shared import jobs
from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from clv.fits.router import router as fits_router
from clv.jobs import recover_loop
from clv.profitability.projection import profitability_subscription
from clv.profitability.router import router as profitability_router
from clv.propositions.projection import targeting_subscription
from clv.propositions.router import router as propositions_router
from clv.schedule.service import refit_loop
from clv.scoring.router import router as scoring_router
from clv.settings import SCHEMA, ClvSettings
from clv.tables import messaging
from clv.transaction_summary.projection import interaction_subscription
from clv.transaction_summary.router import router as transaction_summary_router


class ClvRuntime(ServiceRuntime):
    """The shared runtime plus the refit schedule (when `refit_interval_hours` > 0 and workers run)."""

    settings: ClvSettings

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stopping_schedule = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        self._stopping_schedule.clear()
        jobs.configure(self.settings.job_lease_s)
        if self.settings.run_workers:
            self._tasks.append(asyncio.create_task(recover_loop(self, self._stopping_schedule), name="clv-job-recovery"))
        if self.settings.run_workers and self.settings.refit_interval_hours > 0:
            self._tasks.append(asyncio.create_task(
                refit_loop(self.session_factory, self.outbox, self.settings, self._stopping_schedule),
                name="clv-refit-schedule"))

    async def stop(self) -> None:
        self._stopping_schedule.set()
        jobs = self.__dict__.get("jobs")
        if jobs:
            # Fits and scoring runs finish (or time out) before the engine they write with is disposed.
            await asyncio.wait(list(jobs), timeout=120)
        await super().stop()


def create_app(settings: ClvSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or ClvSettings()
    runtime = ClvRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runtime.subscribe(interaction_subscription(runtime.outbox, settings))
    runtime.subscribe(targeting_subscription())
    runtime.subscribe(profitability_subscription())
    return create_service_app(
        runtime,
        title="clv",
        description="Customer value: transaction summaries, CLV models, value tiers and value propositions.",
        routers=[transaction_summary_router, fits_router, scoring_router, propositions_router,
                 profitability_router],
    )
