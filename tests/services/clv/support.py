"""Builders for the interaction events the clv service consumes, and a client on the in-process transport."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

import httpx
import numpy as np

from shared.contracts import interaction, lifecycle, segmentation
from shared.contracts.envelope import Envelope, Payload
from shared.contracts.topics import INTERACTION_EVENTS, LIFECYCLE_EVENTS, SEGMENTATION_EVENTS
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.transport import OutgoingMessage
from tests.services.conftest import serving

import clv.app
from clv.jobs import wait_for_jobs
from clv.settings import ClvSettings

TOPIC_OF = {interaction.SOURCE: INTERACTION_EVENTS, segmentation.SOURCE: SEGMENTATION_EVENTS, lifecycle.SOURCE: LIFECYCLE_EVENTS}


class Harness:
    def __init__(self, client: httpx.AsyncClient, transport: InProcessTransport, app) -> None:
        self.client = client
        self.transport = transport
        self.app = app

    async def publish(self, payloads: list[Payload], source: str = interaction.SOURCE) -> None:
        envelopes = [Envelope.wrap(p, source=source, subject=str(p.customer_id)) for p in payloads]
        await self.transport.send_batch(
            [OutgoingMessage(topic=TOPIC_OF[source], value=e.to_json(), key=e.subject.encode()) for e in envelopes]
        )

    async def jobs_done(self) -> None:
        await wait_for_jobs(self.app)

    async def poll(self, url: str, timeout: float = 60.0) -> dict:
        """GET a job resource until it leaves queued/running."""
        async with asyncio.timeout(timeout):
            while True:
                body = (await self.client.get(url)).json()
                if body["status"] not in ("queued", "running"):
                    return body
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def clv_service(database_url: str, **overrides) -> AsyncIterator[Harness]:
    transport = InProcessTransport()
    settings = ClvSettings(database_url=database_url, transport="inprocess", relay_poll_interval_s=0.2, **overrides)
    app = clv.app.create_app(settings, transport)
    async with serving(app) as client:
        harness = Harness(client, transport, app)
        yield harness
        await harness.jobs_done()


def purchase(
    customer_id: uuid.UUID, amount: str | Decimal, at: datetime, currency: str = "EUR", purchase_id: uuid.UUID | None = None
) -> interaction.PurchaseRecorded:
    return interaction.PurchaseRecorded(
        customer_id=customer_id,
        purchase_id=purchase_id or uuid.uuid4(),
        source="shop",
        order_id=uuid.uuid4().hex[:8],
        amount=Decimal(amount),
        currency=currency,
        channel="web",
        occurred_at=at,
    )


def refund(
    p: interaction.PurchaseRecorded, amount: str, at: datetime, cancelled: bool = False, customer_id: uuid.UUID | None = None
) -> interaction.PurchaseRefunded:
    return interaction.PurchaseRefunded(
        customer_id=customer_id or p.customer_id,
        purchase_id=p.purchase_id,
        refund_id=uuid.uuid4(),
        source="shop",
        order_id=p.order_id,
        amount=Decimal(amount),
        currency=p.currency,
        cancelled=cancelled,
        occurred_at=at,
    )


def simulated_purchases(
    n: int, as_of: datetime, seed: int = 1, r: float = 0.6, alpha: float = 6.0, a: float = 0.8, b: float = 2.5
) -> list[interaction.PurchaseRecorded]:
    """BG/NBD purchase histories in weeks (first purchases over the past year), spend from Gamma-Gamma."""
    from datetime import timedelta

    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        customer = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
        age_weeks = rng.uniform(4, 52)
        lam, p, nu = rng.gamma(r, 1 / alpha), rng.beta(a, b), rng.gamma(4.0, 1 / 15.0)
        t, times = 0.0, [0.0]
        while True:
            t += rng.exponential(1 / lam)
            if t > age_weeks:
                break
            times.append(t)
            if rng.random() < p:
                break
        start = as_of - timedelta(weeks=age_weeks)
        for wk in times:
            amount = Decimal(str(round(float(rng.gamma(6.0, 1 / nu)), 2)))
            events.append(purchase(customer, amount, start + timedelta(weeks=wk)))
    return events
