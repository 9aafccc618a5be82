"""The lifecycle app on a real Postgres, plus builders for the events it consumes."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import sqlalchemy as sa

from shared.contracts import clv, interaction
from shared.contracts.envelope import Envelope, Payload
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.transport import IncomingMessage
from shared.service import ServiceRuntime
from tests.services.conftest import serving

import lifecycle.app
from lifecycle.settings import LifecycleSettings
from lifecycle.stages.projection import facts_subscription

NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def envelope(payload: Payload, event_id: str | None = None) -> Envelope:
    source = clv.SOURCE if isinstance(payload, clv.CustomerValueUpdated) else interaction.SOURCE
    return Envelope.wrap(payload, source=source, subject=str(payload.customer_id), event_id=event_id)


def purchase(cid: uuid.UUID, at: datetime, purchase_id: uuid.UUID | None = None, amount: str = "10.00") -> Envelope:
    return envelope(
        interaction.PurchaseRecorded(
            customer_id=cid,
            purchase_id=purchase_id or uuid.uuid4(),
            source="shop",
            order_id=str(uuid.uuid4()),
            amount=Decimal(amount),
            currency="EUR",
            channel="web",
            occurred_at=at,
        )
    )


def cancellation(cid: uuid.UUID, at: datetime, purchase_id: uuid.UUID) -> Envelope:
    return envelope(
        interaction.PurchaseRefunded(
            customer_id=cid,
            purchase_id=purchase_id,
            refund_id=uuid.uuid4(),
            source="shop",
            order_id="x",
            amount=Decimal("10"),
            currency="EUR",
            cancelled=True,
            occurred_at=at,
        )
    )


def created(cid: uuid.UUID, at: datetime | None = None) -> Envelope:
    return envelope(interaction.CustomerCreated(customer_id=cid, source="web", first_seen_at=at or NOW))


def erased(cid: uuid.UUID, at: datetime | None = None) -> Envelope:
    return envelope(interaction.CustomerErased(customer_id=cid, erased_at=at or NOW))


def lead(cid: uuid.UUID, at: datetime, qualified: bool = False, referred_by: uuid.UUID | None = None) -> Envelope:
    return envelope(
        interaction.LeadCaptured(
            customer_id=cid, source="web", qualified=qualified, referred_by_customer_id=referred_by, occurred_at=at
        )
    )


def feedback(cid: uuid.UUID, at: datetime, nps: int) -> Envelope:
    return envelope(
        interaction.FeedbackRecorded(customer_id=cid, feedback_id=uuid.uuid4(), source="survey", nps=nps, occurred_at=at)
    )


def value(cid: uuid.UUID, at: datetime, tier: str, p_alive: float) -> Envelope:
    return envelope(
        clv.CustomerValueUpdated(
            customer_id=cid,
            currency="EUR",
            historical_value=Decimal(1),
            current_value=Decimal(1),
            potential_value=Decimal(1),
            clv=Decimal(1),
            probability_alive=p_alive,
            expected_purchases=1,
            tier=tier,
            as_of=at,
        )
    )


def deal_updated(
    cid: uuid.UUID,
    at: datetime,
    deal_id: str,
    stage: str,
    pipeline: str = "sales",
    amount: str | None = "1000",
    lost_reason: str | None = None,
) -> Envelope:
    return envelope(
        interaction.DealUpdated(
            customer_id=cid,
            source="crm-x",
            deal_id=deal_id,
            pipeline=pipeline,
            stage=stage,
            amount=Decimal(amount) if amount else None,
            currency="EUR" if amount else None,
            lost_reason=lost_reason,
            occurred_at=at,
        )
    )


def consumed(e: Envelope) -> ConsumedEvent:
    from shared.contracts.clv import CLV_EVENT_TYPES
    from shared.contracts.interaction import INTERACTION_EVENT_TYPES

    model = {**INTERACTION_EVENT_TYPES, **CLV_EVENT_TYPES}[e.type]
    return ConsumedEvent(e, model.model_validate(e.data), IncomingMessage("t", 0, 0, None, None, []))


@dataclass
class Lifecycle:
    client: httpx.AsyncClient
    runtime: ServiceRuntime

    async def apply(self, events: list[Envelope]) -> None:
        """One consumed batch, through the service's own handler, in one transaction."""
        handler = facts_subscription(self.runtime.outbox).handler
        async with self.runtime.session_factory() as session, session.begin():
            await handler(session, [consumed(e) for e in events])

    async def sql(self, statement: str, **params: object) -> list[sa.Row]:
        async with self.runtime.session_factory() as session:
            return list(await session.execute(sa.text(statement), params))

    async def view(self, cid: uuid.UUID) -> dict:
        resp = await self.client.get(f"/v1/customers/{cid}/lifecycle")
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
async def lc(database_url: str) -> AsyncIterator[Lifecycle]:
    settings = LifecycleSettings(database_url=database_url, transport="inprocess", run_workers=False, sweep_interval_s=0)
    app = lifecycle.app.create_app(settings, InProcessTransport())
    async with serving(app) as client:
        yield Lifecycle(client, app.state.runtime)
