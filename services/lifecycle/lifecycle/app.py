"""Composition root of the lifecycle service."""

import asyncio
import logging

from fastapi import FastAPI

from shared import jobs
from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from lifecycle.analytics.router import router as analytics_router
from lifecycle.campaigns.router import router as campaigns_router
from lifecycle.pipelines.router import router as pipelines_router
from lifecycle.rules.router import router as rules_router
from lifecycle.rules.runs import Runner
from lifecycle.settings import SCHEMA, LifecycleSettings
from lifecycle.stages import service as stages
from lifecycle.stages.projection import facts_subscription
from lifecycle.stages.router import router as stages_router
from lifecycle.tables import messaging

log = logging.getLogger(__name__)


async def sweep_periodically(runtime: ServiceRuntime, interval_s: float) -> None:
    """The clock for time-based rules: inactivity churn happens without any event, so something must look.

    Once per interval across replicas: the replica whose transaction takes the sweep's turn sweeps."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with runtime.session_factory() as session, session.begin():
                if not await jobs.claim_tick(session, "lifecycle.scheduled_job", "sweep", interval_s):
                    continue  # another replica swept this interval
                outcome = await stages.sweep(session, runtime.outbox)
            if outcome.moves:
                log.info("sweep moved %d customers", sum(outcome.moves.values()))
        except Exception:  # the next tick tries again
            log.exception("lifecycle sweep failed")


def create_app(settings: LifecycleSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or LifecycleSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runtime.subscribe(facts_subscription(runtime.outbox))
    app = create_service_app(
        runtime,
        title="lifecycle",
        description="Lifecycle pipeline: stages from Approach to Loyalty under a versioned rule set, stage history, "
        "manual moves, pipelines and deals, funnel and churn analytics, campaigns and their report.",
        routers=[stages_router, rules_router, pipelines_router, analytics_router, campaigns_router],
    )
    app.state.replays = replays = Runner(runtime)
    # A replay cut short by a restart is resumed (by this replica at start, or by another once its lease lapsed).
    runtime.on_start(replays.resume)
    runtime.add_loop("lifecycle-replay-recovery", replays.recover_periodically)
    if settings.sweep_interval_s > 0:
        runtime.add_loop("lifecycle-sweep", lambda: sweep_periodically(runtime, settings.sweep_interval_s))
    return app
