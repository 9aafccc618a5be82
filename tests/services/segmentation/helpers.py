"""Builders for the events segmentation consumes, and a way to apply them through the real handlers."""

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from shared.contracts import clv, interaction, lifecycle
from shared.contracts.envelope import Envelope, Payload
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.outbox import Outbox, Templates, message_columns

from segmentation.profiles.projection import apply_interaction_events, apply_stage_events, apply_value_events
from segmentation.rules.service import refresh_rule_segments
from segmentation.tables import messaging

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def consumed(payload: Payload) -> ConsumedEvent:
    env = Envelope.wrap(payload, source=interaction.SOURCE, subject=str(payload.customer_id))
    return ConsumedEvent(envelope=env, payload=payload, message=None)  # type: ignore[arg-type]


def purchase(
    customer: uuid.UUID, amount: str, days: float, currency: str = "EUR", purchase_id: uuid.UUID | None = None
) -> interaction.PurchaseRecorded:
    return interaction.PurchaseRecorded(
        customer_id=customer,
        purchase_id=purchase_id or uuid.uuid4(),
        source="shop",
        order_id="o",
        amount=Decimal(amount),
        currency=currency,
        channel="web",
        occurred_at=T0 + timedelta(days=days),
    )


def refund(
    customer: uuid.UUID, purchase_id: uuid.UUID, amount: str, cancelled: bool = False, days: float = 1
) -> interaction.PurchaseRefunded:
    return interaction.PurchaseRefunded(
        customer_id=customer,
        purchase_id=purchase_id,
        refund_id=uuid.uuid4(),
        source="shop",
        order_id="o",
        amount=Decimal(amount),
        currency="EUR",
        cancelled=cancelled,
        occurred_at=T0 + timedelta(days=days),
    )


def touch(customer: uuid.UUID, days: float, touchpoint_id: uuid.UUID | None = None) -> interaction.TouchpointRecorded:
    return interaction.TouchpointRecorded(
        customer_id=customer,
        touchpoint_id=touchpoint_id or uuid.uuid4(),
        source="desk",
        channel="email",
        direction="inbound",
        occurred_at=T0 + timedelta(days=days),
    )


def updated(customer: uuid.UUID, **attributes) -> interaction.CustomerUpdated:
    return interaction.CustomerUpdated(customer_id=customer, source="shop", attributes=attributes, updated_at=T0)


def merged(survivor: uuid.UUID, merged_id: uuid.UUID, merge_id: uuid.UUID | None = None) -> interaction.CustomerMerged:
    return interaction.CustomerMerged(
        customer_id=survivor,
        merge_id=merge_id or uuid.uuid4(),
        survivor_id=survivor,
        merged_id=merged_id,
        reason="same email",
        merged_at=T0,
    )


def unmerged(
    survivor: uuid.UUID, restored: uuid.UUID, purchase_ids: list, touchpoint_ids: list, merge_id: uuid.UUID
) -> interaction.CustomerUnmerged:
    """The undo of the merge `merge_id` (an unmerge always names the merge it undoes)."""
    return interaction.CustomerUnmerged(
        customer_id=survivor,
        merge_id=merge_id,
        survivor_id=survivor,
        restored_id=restored,
        purchase_ids=purchase_ids,
        touchpoint_ids=touchpoint_ids,
        unmerged_at=T0,
    )


def erased(customer: uuid.UUID) -> interaction.CustomerErased:
    return interaction.CustomerErased(customer_id=customer, erased_at=T0)


def value(customer: uuid.UUID, clv_amount: str, tier: str, days: float = 0) -> clv.CustomerValueUpdated:
    return clv.CustomerValueUpdated(
        customer_id=customer,
        currency="EUR",
        historical_value=Decimal(0),
        current_value=Decimal(0),
        potential_value=Decimal(0),
        clv=Decimal(clv_amount),
        probability_alive=0.5,
        expected_purchases=1.0,
        tier=tier,
        as_of=T0 + timedelta(days=days),
    )


def stage(customer: uuid.UUID, to: str, days: float = 0) -> lifecycle.StageChanged:
    return lifecycle.StageChanged(
        customer_id=customer, from_stage=None, to_stage=lifecycle.Stage(to), changed_at=T0 + timedelta(days=days), reason="test"
    )


class Feeder:
    """Applies batches through the service's own handlers (what the inbox consumer calls), on a real database."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url, pool_size=4)
        self.sessions = make_session_factory(self.engine)
        self.outbox = Outbox(messaging, "segmentation")

    async def apply(self, payloads: list[Payload], rules: bool = True) -> None:
        by_kind = {
            functools.partial(apply_interaction_events, outbox=self.outbox): [
                p for p in payloads if type(p).__module__.endswith("interaction")
            ],
            apply_value_events: [p for p in payloads if isinstance(p, clv.CustomerValueUpdated)],
            apply_stage_events: [p for p in payloads if isinstance(p, lifecycle.StageChanged | lifecycle.StageCleared)],
        }
        async with self.sessions.begin() as session:
            for handler, items in by_kind.items():
                if items:
                    touched = await handler(session, [consumed(p) for p in items])
                    if rules and touched:
                        await refresh_rule_segments(session, self.outbox, "EUR", customer_ids=list(touched))

    async def close(self) -> None:
        await self.engine.dispose()


async def outbox_rows(engine) -> Sequence[tuple[Any, bytes]]:
    """The outbox's rows in id order, each with the bytes the relay sends for it (a run's templated rows filled)."""
    t = messaging.outbox
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(*message_columns(t)).order_by(t.c.id))).all()
        payloads = await Templates(messaging.outbox_template).payloads(conn, rows)
    return list(zip(rows, payloads, strict=True))
