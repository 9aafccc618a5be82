"""Events the interaction service publishes on `interaction.events`, keyed and subjected by customer id."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from shared.contracts.envelope import Payload

SOURCE = "/services/interaction"


class CustomerCreated(Payload):
    """A customer was seen for the first time and given an internal id."""

    EVENT_TYPE: ClassVar[str] = "customer.created"
    customer_id: uuid.UUID
    source: str = Field(description="The partner whose event introduced the customer.")
    first_seen_at: datetime


class PurchaseRecorded(Payload):
    """A purchase was stored for a customer; carries all that consumers need, so none calls back."""

    EVENT_TYPE: ClassVar[str] = "purchase.recorded"
    customer_id: uuid.UUID
    purchase_id: uuid.UUID
    source: str
    order_id: str
    amount: Decimal
    currency: str
    channel: str
    occurred_at: datetime


INTERACTION_EVENT_TYPES: dict[str, type[Payload]] = {m.EVENT_TYPE: m for m in [CustomerCreated, PurchaseRecorded]}
