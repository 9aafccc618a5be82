"""Events partner systems publish (to the `partner.events` topic or `POST /v1/events`).

The envelope's `source` names the partner, `subject` is the partner's own id for the customer, and `id` is
unique per partner: resending it is reported as a duplicate and changes nothing. Every payload may carry
`identifiers` (email, phone, other ids the partner knows) so the interaction service can link the customer
across partners (identity resolution).

Classes whose name a domain event also has (`shared/contracts/interaction.py`) carry a `Partner` prefix, so
names are unique across contracts and in the AsyncAPI document; the wire `type` strings are unchanged.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import Payload, by_event_type
from shared.contracts.formats import (
    Amount,
    Attributes,
    Currency,
    Email,
    Phone,
)

# One rule for every type: the payload's `occurred_at`, else the envelope's `time`, is when the fact happened.
# It orders identity, attribute and consent facts (the newest wins per key, whatever the arrival order).
OCCURRED_AT = (
    "When the fact happened, RFC 3339 with an offset; defaults to the envelope `time`. It orders "
    "identity, attribute and consent facts: per key the newest wins, whatever order events arrive in. "
    "Accepted from 1990-01-01T00:00:00Z to now + 1 day."
)

OccurredAt = Annotated[AwareDatetime | None, Field(description=OCCURRED_AT)]


class Identifiers(BaseModel):
    """Identifiers a partner knows for the customer, besides its own id (the envelope's `subject`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    email: Email | None = None
    phone: Phone | None = None
    external_ids: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=dict,
        max_length=20,
        description="The partner's other ids for the customer: {source: id}. The key must be the partner's own "
        "`source` (another partner's ids are rejected); ids are 1–200 characters.",
    )


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    STORE = "store"
    SUPPORT = "support"
    SOCIAL = "social"
    APP = "app"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class PartnerPayload(Payload):
    identifiers: Identifiers | None = None


class LineItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(1, ge=1, le=1_000_000)
    unit_price: Amount
    # Optional (older events have neither): what one unit cost the partner, and the product category whose
    # default cost rate applies when the cost is missing (clv's profitability, docs/clv.md).
    unit_cost: Amount | None = Field(None, description="What one unit cost the partner (cost of goods).")
    category: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        examples=["books"],
        description="Product category; picks the default cost rate when unit_cost is missing.",
    )


class CustomerIdentified(PartnerPayload):
    """The partner knows this customer (sign-up, login, CRM sync): identifiers, attributes and consent."""

    EVENT_TYPE: ClassVar[str] = "customer.identified"
    attributes: Attributes = Field(default_factory=dict)
    consent: dict[str, bool] = Field(default_factory=dict, examples=[{"email_marketing": True}], description="Purpose → granted.")
    occurred_at: OccurredAt = None


class PartnerCustomerUpdated(CustomerIdentified):
    """Attributes or identifiers of a known customer changed at the partner."""

    EVENT_TYPE: ClassVar[str] = "customer.updated"


class OrderCompleted(PartnerPayload):
    """A customer completed an order at the partner."""

    EVENT_TYPE: ClassVar[str] = "order.completed"
    order_id: str = Field(min_length=1, max_length=100, examples=["A-1001"])
    amount: Amount
    currency: Currency
    channel: str = Field("web", max_length=40, examples=["web", "store", "app"])
    occurred_at: OccurredAt = None
    line_items: list[LineItem] = Field(default_factory=list, max_length=500)
    shipping_cost: Amount | None = Field(None, description="What delivering the order cost the partner (not the customer).")
    discount: Amount | None = Field(None, description="Price reduction granted on the order; `amount` is after it.")


class OrderRefunded(PartnerPayload):
    """An order was refunded, in full (no amount) or in part (amount)."""

    EVENT_TYPE: ClassVar[str] = "order.refunded"
    order_id: str = Field(min_length=1, max_length=100)
    amount: Amount | None = Field(None, description="Refunded amount; omitted means the whole order.")
    currency: Currency | None = None
    reason: str | None = Field(None, max_length=500)
    occurred_at: OccurredAt = None


class OrderCancelled(PartnerPayload):
    """An order was cancelled: it no longer counts as a purchase."""

    EVENT_TYPE: ClassVar[str] = "order.cancelled"
    order_id: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=500)
    occurred_at: OccurredAt = None


class InteractionLogged(PartnerPayload):
    """A touchpoint: an email, call, visit, support ticket, social message…"""

    EVENT_TYPE: ClassVar[str] = "interaction.logged"
    channel: Channel
    direction: Direction = Direction.INBOUND
    outcome: str | None = Field(None, max_length=100, examples=["resolved", "opened", "no_answer"])
    summary: str | None = Field(None, max_length=2000)
    occurred_at: OccurredAt = None


class FeedbackSubmitted(PartnerPayload):
    """The customer's evaluation: NPS, CSAT, and perceived against expected (required) value."""

    EVENT_TYPE: ClassVar[str] = "feedback.submitted"
    nps: int | None = Field(None, ge=0, le=10)
    csat: int | None = Field(None, ge=1, le=5)
    perceived_value: float | None = Field(None, ge=0, le=10, description="Value the customer perceives, 0–10.")
    expected_value: float | None = Field(None, ge=0, le=10, description="Value the customer requires, 0–10.")
    proposition_id: str | None = Field(None, max_length=100, description="The value proposition this answers, if any.")
    comment: str | None = Field(None, max_length=5000)
    occurred_at: OccurredAt = None


class PartnerLeadCaptured(PartnerPayload):
    """A prospect showed interest (form, event, campaign)."""

    EVENT_TYPE: ClassVar[str] = "lead.captured"
    campaign: str | None = Field(None, max_length=200)
    lead_source: str | None = Field(None, max_length=200, examples=["webinar", "referral"])
    qualified: bool = Field(False, description="Marketing-qualified: moves the customer to Acquisition.")
    referred_by: str | None = Field(None, max_length=200, description="Partner id of the referring customer.")
    occurred_at: OccurredAt = None


class ConsentChanged(PartnerPayload):
    """The customer granted or withdrew consent for purposes."""

    EVENT_TYPE: ClassVar[str] = "consent.changed"
    consent: dict[str, bool] = Field(min_length=1)
    occurred_at: OccurredAt = None


class ErasureRequested(PartnerPayload):
    """The customer asked to be forgotten (GDPR art. 17)."""

    EVENT_TYPE: ClassVar[str] = "erasure.requested"
    reason: str | None = Field(None, max_length=500)
    occurred_at: OccurredAt = None


class PartnerDealUpdated(PartnerPayload):
    """An opportunity at the partner was opened or moved (pipeline and stage by key)."""

    EVENT_TYPE: ClassVar[str] = "deal.updated"
    deal_id: str = Field(min_length=1, max_length=100)
    pipeline: str = Field("sales", max_length=100)
    stage: str = Field(max_length=100, examples=["qualified", "proposal", "won", "lost"])
    amount: Amount | None = None
    currency: Currency | None = None
    expected_close: datetime | None = Field(None, description="RFC 3339 with an offset, from 1990-01-01 to now + 10 years.")
    owner: str | None = Field(None, max_length=200)
    lost_reason: str | None = Field(None, max_length=500)
    occurred_at: OccurredAt = None


class CustomEvent(PartnerPayload):
    """An event of a type an admin registered (`POST /v1/event-types`), such as `order.shipped`.

    Its `data` is checked against the JSON Schema of the type's version: the one `dataschema` names
    (`urn:crm:schema:<type>:v<N>`), else the newest. `identifiers` and `occurred_at` mean what they mean in
    every event; every other field is the registered schema's. Not in `PARTNER_EVENT_TYPES`: the types are
    data, served in the AsyncAPI document from interaction's registry.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    EVENT_TYPE: ClassVar[str] = "custom"  # the envelope's `type` names the registered type
    occurred_at: OccurredAt = None


PARTNER_EVENT_TYPES = by_event_type(
    CustomerIdentified,
    PartnerCustomerUpdated,
    OrderCompleted,
    OrderRefunded,
    OrderCancelled,
    InteractionLogged,
    FeedbackSubmitted,
    PartnerLeadCaptured,
    ConsentChanged,
    ErasureRequested,
    PartnerDealUpdated,
)


def occurred(payload: Payload, event_time: datetime) -> datetime:
    """When the fact happened: the payload's `occurred_at` if given, else the event time."""
    return getattr(payload, "occurred_at", None) or event_time


# One example per type, as a partner would send it (the AsyncAPI document's message examples; a test posts each).
EXAMPLES: dict[str, dict[str, object]] = {
    "customer.identified": {
        "identifiers": {"email": "ada@example.com", "phone": "+442079460958", "external_ids": {"shop-eu": "loyalty-4711"}},
        "attributes": {"first_name": "Ada", "tier": "gold", "visits": 12, "vip": True, "birthday": "1990-04-01"},
        "consent": {"email_marketing": True},
        "occurred_at": "2026-01-15T10:29:00Z",
    },
    "customer.updated": {"attributes": {"tier": "platinum"}, "occurred_at": "2026-01-15T10:29:00Z"},
    "order.completed": {
        "order_id": "A-1001",
        "amount": "59.90",
        "currency": "EUR",
        "channel": "web",
        "occurred_at": "2026-01-15T10:29:00Z",
        "shipping_cost": "4.50",
        "discount": "5.00",
        "line_items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "29.95", "unit_cost": "12.00", "category": "books"}],
    },
    "order.refunded": {"order_id": "A-1001", "amount": "29.95", "currency": "EUR", "reason": "damaged"},
    "order.cancelled": {"order_id": "A-1002", "reason": "changed mind"},
    "interaction.logged": {
        "channel": "support",
        "direction": "inbound",
        "outcome": "resolved",
        "summary": "Asked about delivery times",
    },
    "feedback.submitted": {
        "nps": 9,
        "csat": 5,
        "perceived_value": 8.5,
        "expected_value": 7.0,
        "proposition_id": "fast-delivery",
        "comment": "Quick delivery",
    },
    "lead.captured": {"campaign": "spring-webinar", "lead_source": "webinar", "qualified": True, "referred_by": "C-0999"},
    "consent.changed": {"consent": {"email_marketing": False, "sms": True}, "occurred_at": "2026-01-15T10:29:00Z"},
    "erasure.requested": {"reason": "customer request by email"},
    "deal.updated": {
        "deal_id": "D-77",
        "pipeline": "sales",
        "stage": "proposal",
        "amount": "12000.00",
        "currency": "EUR",
        "expected_close": "2026-03-31T00:00:00Z",
        "owner": "sam",
        "occurred_at": "2026-01-15T10:29:00Z",
    },
}
