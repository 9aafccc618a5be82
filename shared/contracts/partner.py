"""Events partner systems publish (to the `partner.events` topic or `POST /v1/events`).

The envelope's `source` names the partner, `subject` is the partner's own id for the customer, and `id` is
unique per partner: resending it is reported as a duplicate and changes nothing.
"""

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import Payload


class LineItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(1, ge=1, le=1_000_000)
    unit_price: Decimal = Field(ge=0, max_digits=14, decimal_places=4)


class OrderCompleted(Payload):
    """A customer completed an order at the partner."""

    EVENT_TYPE: ClassVar[str] = "order.completed"
    order_id: str = Field(min_length=1, max_length=100, examples=["A-1001"])
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=4, examples=["59.90"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217")
    channel: str = Field("web", max_length=40, examples=["web", "store", "app"])
    occurred_at: AwareDatetime | None = Field(None, description="When the order completed; defaults to the event time.")
    line_items: list[LineItem] = Field(default_factory=list, max_length=500)


PARTNER_EVENT_TYPES: dict[str, type[Payload]] = {m.EVENT_TYPE: m for m in [OrderCompleted]}


def occurred(order: OrderCompleted, event_time: datetime) -> datetime:
    return order.occurred_at or event_time
