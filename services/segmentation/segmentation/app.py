"""Composition root of the segmentation service."""

from fastapi import FastAPI

from shared import jobs
from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from segmentation.profiles.projection import interaction_subscription, stage_subscription, value_subscription
from segmentation.profiles.router import router as profiles_router
from segmentation.runs.router import router as runs_router
from segmentation.runs.service import RunExecutor
from segmentation.schemes.router import router as schemes_router
from segmentation.segments.router import router as segments_router
from segmentation.settings import SCHEMA, SegmentationSettings
from segmentation.tables import messaging


class SegmentationRuntime(ServiceRuntime):
    """The shared runtime plus the run executor (background runs and the schedule)."""

    def __init__(self, settings: SegmentationSettings, transport: Transport | None) -> None:
        super().__init__(settings, schema=SCHEMA, tables=messaging, transport=transport)
        self.runs = RunExecutor(self.session_factory, self.outbox, settings.reporting_currency,
                                settings.schedule_interval_s, tuple(settings.schedule_kinds))

    async def start(self) -> None:
        await super().start()
        if self.settings.run_workers:
            jobs.configure(self.settings.job_lease_s)
            await self.runs.start()

    async def stop(self) -> None:
        await self.runs.stop()
        await super().stop()


def create_app(settings: SegmentationSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or SegmentationSettings()
    runtime = SegmentationRuntime(settings, transport)
    currency = settings.reporting_currency
    runtime.subscribe(interaction_subscription(runtime.outbox, currency))
    runtime.subscribe(value_subscription(runtime.outbox, currency))
    runtime.subscribe(stage_subscription(runtime.outbox, currency))
    app = create_service_app(
        runtime,
        title="segmentation",
        description="Customer portfolio analysis: aggregates, RFM, clusters, value tiers, rule segments, "
                    "membership history.",
        routers=[profiles_router, segments_router, runs_router, schemes_router],
    )
    app.state.run_executor = runtime.runs
    return app
