"""Composition root of the lifecycle service."""

from fastapi import FastAPI

from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from lifecycle.settings import SCHEMA, LifecycleSettings
from lifecycle.stages.projection import purchases_subscription
from lifecycle.stages.router import router as stages_router
from lifecycle.tables import messaging


def create_app(settings: LifecycleSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or LifecycleSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runtime.subscribe(purchases_subscription(runtime.outbox))
    return create_service_app(
        runtime,
        title="lifecycle",
        description="Lifecycle pipeline: stages from Approach to Loyalty, stage history, deals and funnels.",
        routers=[stages_router],
    )
