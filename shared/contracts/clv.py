"""Events the clv (customer value) service publishes on `clv.events`, keyed and subjected by customer id."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import Field

from shared.contracts.envelope import Payload, by_event_type

SOURCE = "/services/clv"


class CustomerValueUpdated(Payload):
    """A customer's value or value tier changed materially (see the clv service docs for the definitions)."""

    EVENT_TYPE: ClassVar[str] = "customer.value_updated"
    customer_id: uuid.UUID
    currency: str
    historical_value: Decimal = Field(description="Realised margin to date.")
    current_value: Decimal = Field(description="Expected value over the coming period at present behaviour.")
    potential_value: Decimal = Field(
        description=(
            "Development upside: margin × P(alive) × (wallet − expected spend if alive) over the lifetime horizon "
            "(the clv service docs define the wallet)."
        )
    )
    clv: Decimal
    probability_alive: float = Field(ge=0, le=1)
    expected_purchases: float = Field(
        ge=0,
        description=("Over the scoring run's current period (`current_months`, default 12 months), not the lifetime horizon."),
    )
    tier: str = Field(examples=["platinum", "gold", "silver", "bronze"])
    previous_tier: str | None = None
    model_version: str | None = None
    as_of: datetime
    version: int | None = Field(
        None,
        ge=1,
        description=(
            "The owner's order of this customer's value in this currency: strictly greater than the version of "
            "every earlier customer.value_updated of the customer (gaps allowed). A copy applies an event only if "
            "its version is greater than the one it stored, never by `as_of`. Absent on events published before "
            "versions existed: a copy that holds a version ignores them."
        ),
    )


class PropositionDelivered(Payload):
    """A value proposition was delivered to a customer (offer sent, service level granted…)."""

    EVENT_TYPE: ClassVar[str] = "proposition.delivered"
    customer_id: uuid.UUID
    proposition_id: uuid.UUID
    delivery_id: uuid.UUID
    channel: str
    partner: str | None = None
    delivered_at: datetime


CLV_EVENT_TYPES = by_event_type(CustomerValueUpdated, PropositionDelivered)
