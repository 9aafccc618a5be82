"""Composition root of the interaction service."""

from fastapi import FastAPI

from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from interaction.customers.router import router as customers_router
from interaction.event_types.router import router as event_types_router
from interaction.identity.router import router as identity_router
from interaction.ingestion.consumer import partner_ingest_subscription
from interaction.ingestion.router import router as ingestion_router
from interaction.partners.router import router as partners_router
from interaction.settings import SCHEMA, InteractionSettings
from interaction.tables import messaging


def create_app(settings: InteractionSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or InteractionSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runtime.subscribe(partner_ingest_subscription(runtime.outbox))
    return create_service_app(
        runtime,
        title="interaction",
        description="Customer intimacy: partner event ingestion, identity resolution and merges, the customer profile, "
        "timeline, search, partners, export and erasure.",
        routers=[ingestion_router, customers_router, identity_router, partners_router, event_types_router],
    )
