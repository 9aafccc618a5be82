"""Composition root of the clv service."""

from fastapi import FastAPI

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


def create_app(settings: ClvSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or ClvSettings()
    # Fits and scoring runs get two minutes to finish at shutdown (they are resumed elsewhere otherwise).
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport, job_drain_s=120)
    runtime.add_loop("clv-job-recovery", lambda: recover_loop(runtime, settings))
    if settings.refit_interval_s > 0:
        runtime.add_loop("clv-refit-schedule", lambda: refit_loop(runtime.session_factory, runtime.outbox, settings))
    # Both read interaction's events: one consumer fetches and parses each event once.
    runtime.subscribe_together(
        "interaction_events", [interaction_subscription(runtime.outbox, settings), profitability_subscription()]
    )
    runtime.subscribe(targeting_subscription())
    return create_service_app(
        runtime,
        title="clv",
        description="Customer value: transaction summaries, CLV models, value tiers and value propositions.",
        routers=[transaction_summary_router, fits_router, scoring_router, propositions_router, profitability_router],
    )
