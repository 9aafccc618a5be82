"""Composition root of the segmentation service."""

from fastapi import FastAPI

from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from segmentation.exports.router import router as exports_router
from segmentation.exports.service import ExportExecutor
from segmentation.profiles.projection import interaction_subscription, stage_subscription, value_subscription
from segmentation.profiles.router import router as profiles_router
from segmentation.runs.router import router as runs_router
from segmentation.runs.service import RunExecutor
from segmentation.schemes.router import router as schemes_router
from segmentation.segments.router import router as segments_router
from segmentation.settings import SCHEMA, SegmentationSettings
from segmentation.tables import messaging


def create_app(settings: SegmentationSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or SegmentationSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runs = RunExecutor(
        runtime.session_factory,
        runtime.outbox,
        settings.reporting_currency,
        settings.schedule_interval_s,
        tuple(settings.schedule_kinds),
        launcher=runtime.jobs,
    )
    # A run is not restartable (its results are keyed by run): one whose replica died fails as interrupted.
    runtime.on_start(runs.launch_queued)
    runtime.add_loop("segmentation-recovery", runs.recover_periodically)
    if settings.schedule_interval_s > 0:
        runtime.add_loop("segmentation-schedule", runs.schedule_periodically)
    # An export only reads: one whose replica died starts over on another (segmentation/exports/service.py).
    exports = ExportExecutor(runtime.session_factory, runtime.jobs)
    runtime.on_start(exports.launch_queued)
    runtime.add_loop("segment-export-recovery", exports.recover_periodically)
    currency = settings.reporting_currency
    runtime.subscribe(interaction_subscription(runtime.outbox, currency))
    runtime.subscribe(value_subscription(runtime.outbox, currency))
    runtime.subscribe(stage_subscription(runtime.outbox, currency))
    app = create_service_app(
        runtime,
        title="segmentation",
        description="Customer portfolio analysis: aggregates, RFM, clusters, value tiers, rule segments, membership history.",
        routers=[profiles_router, segments_router, exports_router, runs_router, schemes_router],
    )
    app.state.run_executor = runs
    app.state.export_executor = exports
    return app
