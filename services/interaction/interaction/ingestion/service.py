"""Applies validated partner events: resolves the customer, stores the purchase, publishes what changed.

Both doors end here. Idempotency: the event id is claimed in the inbox (per source), and an order is stored
once per (source, order id), so a resent event or a resent order changes nothing.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import interaction as contracts
from shared.contracts.envelope import Envelope, InvalidEvent, Payload, describe_validation_error
from shared.contracts.partner import PARTNER_EVENT_TYPES, OrderCompleted, occurred
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.inbox import claim
from shared.messaging.outbox import Outbox

from interaction.customers import repository
from interaction.tables import messaging

# The inbox name both doors share, so an event sent through both is applied once.
INGEST_INBOX = "interaction.partner-ingest"


@dataclass(frozen=True, slots=True)
class PartnerEvent:
    envelope: Envelope
    payload: Payload


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: str  # accepted | duplicate | rejected
    id: str | None = None
    reason: str | None = None


def validate(raw: object) -> PartnerEvent:
    """A raw JSON item as a typed partner event, or `InvalidEvent` saying what is wrong."""
    envelope = Envelope.from_dict(raw)
    model = PARTNER_EVENT_TYPES.get(envelope.type)
    if model is None:
        raise InvalidEvent(f"unknown event type {envelope.type!r}; known: {', '.join(sorted(PARTNER_EVENT_TYPES))}")
    return PartnerEvent(envelope, parse_payload(envelope, model))


def parse_payload(envelope: Envelope, model: type[Payload]) -> Payload:
    if not envelope.subject:
        raise InvalidEvent("subject: the partner's customer id is required")
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidEvent(f"data: {describe_validation_error(exc)}") from None


async def ingest_http_batch(session: AsyncSession, outbox: Outbox, items: Sequence[object]) -> list[ItemResult]:
    """The HTTP door: validate every item, apply the valid new ones, report each item's fate."""
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, PartnerEvent]] = []
    for i, raw in enumerate(items):
        try:
            valid.append((i, validate(raw)))
        except InvalidEvent as exc:
            ident = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            results[i] = ItemResult(i, "rejected", ident, str(exc))
    seen: set[tuple[str, str]] = set()
    fresh_keys = await claim(session, messaging.inbox, INGEST_INBOX,
                             list(dict.fromkeys((e.envelope.source, e.envelope.id) for _, e in valid)))
    fresh: list[PartnerEvent] = []
    for i, event in valid:
        key = (event.envelope.source, event.envelope.id)
        if key in fresh_keys and key not in seen:
            seen.add(key)
            fresh.append(event)
            results[i] = ItemResult(i, "accepted", event.envelope.id)
        else:
            results[i] = ItemResult(i, "duplicate", event.envelope.id)
    await apply_partner_events(session, outbox, fresh)
    return [results[i] for i in range(len(items))]


async def apply_partner_events(session: AsyncSession, outbox: Outbox, events: Sequence[PartnerEvent]) -> None:
    orders = [e for e in events if isinstance(e.payload, OrderCompleted)]
    if not orders:
        return
    keys = list(dict.fromkeys((e.envelope.source, e.envelope.subject) for e in orders))
    customer_ids = await repository.find_customer_ids(session, keys)
    first_seen: dict[tuple[str, str], object] = {}
    for e in orders:
        key = (e.envelope.source, e.envelope.subject)
        if key not in customer_ids:
            when = occurred(e.payload, e.envelope.time)
            first_seen[key] = min(first_seen.get(key, when), when)
    created = await repository.create_customers(session, first_seen)
    customer_ids.update(created)
    # A concurrent transaction created some of them: resolve those now that its rows are visible.
    customer_ids.update(await repository.find_customer_ids(session, [k for k in first_seen if k not in customer_ids]))

    outgoing: list[Envelope] = [
        Envelope.wrap(contracts.CustomerCreated(customer_id=cid, source=key[0], first_seen_at=first_seen[key]),
                      source=contracts.SOURCE, subject=str(cid))
        for key, cid in created.items()
    ]
    # One order is one purchase: the same order under two event ids in one batch is stored once.
    first_of_order: dict[tuple[str, str], PartnerEvent] = {}
    for e in orders:
        first_of_order.setdefault((e.envelope.source, e.payload.order_id), e)
    rows = {
        key: {
            "id": uuid.uuid4(),
            "customer_id": customer_ids[(e.envelope.source, e.envelope.subject)],
            "source": e.envelope.source,
            "order_id": e.payload.order_id,
            "amount": e.payload.amount,
            "currency": e.payload.currency,
            "channel": e.payload.channel,
            "occurred_at": occurred(e.payload, e.envelope.time),
            "event_id": e.envelope.id,
        }
        for key, e in first_of_order.items()
    }
    inserted = await repository.insert_purchases(session, list(rows.values()))
    for key, r in rows.items():  # in arrival order: one customer's events stay in order
        if key not in inserted:
            continue
        payload = contracts.PurchaseRecorded(
            customer_id=r["customer_id"], purchase_id=r["id"], source=r["source"], order_id=r["order_id"],
            amount=r["amount"], currency=r["currency"], channel=r["channel"], occurred_at=r["occurred_at"],
        )
        outgoing.append(Envelope.wrap(payload, source=contracts.SOURCE, subject=str(r["customer_id"]),
                                      correlation_id=first_of_order[key].envelope.correlationid))
    await outbox.add(session, INTERACTION_EVENTS, outgoing)
