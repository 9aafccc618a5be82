"""Composition root of the segmentation service."""

from fastapi import FastAPI

from shared.messaging.transport import Transport
from shared.service import ServiceRuntime, create_service_app

from segmentation.purchase_summary.projection import purchases_subscription
from segmentation.purchase_summary.router import router as purchase_summary_router
from segmentation.settings import SCHEMA, SegmentationSettings
from segmentation.tables import messaging


def create_app(settings: SegmentationSettings | None = None, transport: Transport | None = None) -> FastAPI:
    settings = settings or SegmentationSettings()
    runtime = ServiceRuntime(settings, schema=SCHEMA, tables=messaging, transport=transport)
    runtime.subscribe(purchases_subscription())
    return create_service_app(
        runtime,
        title="segmentation",
        description="Customer portfolio analysis: purchase aggregates, RFM, clusters, value tiers, segments.",
        routers=[purchase_summary_router],
    )
