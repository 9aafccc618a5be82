"""Composition root of the interaction service."""

from fastapi import FastAPI

from shared.group_commit import GroupCommit
from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from interaction.customers.router import router as customers_router
from interaction.event_types.router import router as event_types_router
from interaction.identity.router import router as identity_router
from interaction.ingestion.consumer import partner_ingest_subscription
from interaction.ingestion.router import router as ingestion_router
from interaction.ingestion.service import store_http_batches
from interaction.partners.router import router as partners_router
from interaction.satisfaction.router import router as satisfaction_router
from interaction.segment_copy.projection import segment_copy_subscription
from interaction.settings import SCHEMA, InteractionSettings
from interaction.tables import messaging


def create_app(settings: InteractionSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or InteractionSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    partner_ingest = runtime.subscribe(partner_ingest_subscription(runtime.outbox))
    runtime.subscribe(segment_copy_subscription())
    app = create_service_app(
        runtime,
        title="interaction",
        description="Customer intimacy: partner event ingestion, identity resolution and merges, the customer profile, "
        "timeline, search, partners and their figures, satisfaction trends, custom event types, export and erasure.",
        routers=[ingestion_router, customers_router, identity_router, partners_router, satisfaction_router, event_types_router],
    )
    # An erasure waits for it (customers/router.py).
    app.state.partner_ingest = partner_ingest
    # HTTP ingestion: concurrent requests share one transaction (docs/interaction.md, "Group commit").
    app.state.ingest_group = (
        GroupCommit(
            runtime.session_factory,
            lambda session, batches: store_http_batches(session, runtime.outbox, batches),
            max_wait_s=settings.ingest_group_max_wait_s,
            max_size=settings.ingest_group_max_events,
            name="interaction-ingest-group",
        )
        if settings.ingest_group_commit
        else None
    )
    return app
