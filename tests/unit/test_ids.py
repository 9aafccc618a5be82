"""The ids written for every event are time-ordered (shared/ids.py): each one made later sorts after the ones
before it, as a UUID and as the text the inbox keys and fact keys hold, so inserts go to the right-hand edge
of their indexes instead of a random page each (`python -m bench inbox_claims`)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import CustomerCreated
from shared.contracts.partner import OrderCompleted

from interaction.ingestion import handlers
from interaction.ingestion.validation import validate


def _time_ordered(ids: list[str]) -> bool:
    return all(uuid.UUID(i).version == 7 for i in ids) and ids == sorted(ids) and len(set(ids)) == len(ids)


def test_event_ids_are_time_ordered():
    order = OrderCompleted(order_id="A-1", amount=Decimal("9.99"), currency="EUR")
    assert _time_ordered([Envelope.wrap(order, source="shop", subject="C-1").id for _ in range(2000)])


def test_an_event_id_the_producer_gives_is_kept():
    order = OrderCompleted(order_id="A-1", amount=Decimal("9.99"), currency="EUR")
    assert Envelope.wrap(order, source="shop", subject="C-1", event_id="partner-7").id == "partner-7"


def test_interactions_events_purchases_and_timeline_rows_get_time_ordered_ids():
    customer = uuid.uuid4()
    created = CustomerCreated(customer_id=customer, source="shop", first_seen_at=datetime.now(UTC))
    assert _time_ordered([handlers.wrap(created, customer).id for _ in range(500)])

    batch = handlers.Batch()
    for n in range(500):
        event = validate(
            {
                "specversion": "1.0",
                "id": f"e-{n}",
                "source": "shop",
                "type": "order.completed",
                "subject": "C-1",
                "time": "2026-12-01T10:00:00Z",
                "data": {"order_id": f"O-{n}", "amount": "10.00", "currency": "EUR"},
            }
        )
        fact = handlers.Fact(customer, customer, uuid.uuid4())  # the timeline row id: made by the caller
        handlers.handler_for(event.payload).collect(batch, event, fact)  # type: ignore[misc]
    assert _time_ordered([str(row["id"]) for row in batch.purchases.values()])
