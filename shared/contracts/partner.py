"""Events partner systems publish (to the `partner.events` topic or `POST /v1/events`).

The envelope's `source` names the partner, `subject` is the partner's own id for the customer, and `id` is
unique per partner: resending it is reported as a duplicate and changes nothing. Every payload may carry
`identifiers` (email, phone, other ids the partner knows) so the interaction service can link the customer
across partners (identity resolution).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import Payload, by_event_type


class Identifiers(BaseModel):
    """Identifiers a partner knows for the customer, besides its own id (the envelope's `subject`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    email: str | None = Field(None, max_length=320, examples=["ada@example.com"])
    phone: str | None = Field(None, max_length=40, examples=["+44 20 7946 0958"], description="Normalised to E.164.")
    external_ids: dict[str, str] = Field(default_factory=dict, max_length=20,
                                         description="Ids of the customer at other systems: {source: id}.")


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
    unit_price: Decimal = Field(ge=0, max_digits=14, decimal_places=4)
    # Optional (older events have neither): what one unit cost the partner, and the product category whose
    # default cost rate applies when the cost is missing (clv's profitability, docs/clv.md).
    unit_cost: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=4,
                                      description="What one unit cost the partner (cost of goods).")
    category: str | None = Field(None, min_length=1, max_length=100, examples=["books"],
                                 description="Product category; picks the default cost rate when unit_cost is missing.")


class CustomerIdentified(PartnerPayload):
    """The partner knows this customer (sign-up, login, CRM sync): identifiers, attributes and consent."""

    EVENT_TYPE: ClassVar[str] = "customer.identified"
    attributes: dict[str, Any] = Field(default_factory=dict, max_length=200,
                                       description="Custom properties: string, number, boolean or date values.")
    consent: dict[str, bool] = Field(default_factory=dict, examples=[{"email_marketing": True}],
                                     description="Purpose → granted.")


class CustomerUpdated(CustomerIdentified):
    """Attributes or identifiers of a known customer changed at the partner."""

    EVENT_TYPE: ClassVar[str] = "customer.updated"


class OrderCompleted(PartnerPayload):
    """A customer completed an order at the partner."""

    EVENT_TYPE: ClassVar[str] = "order.completed"
    order_id: str = Field(min_length=1, max_length=100, examples=["A-1001"])
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=4, examples=["59.90"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217")
    channel: str = Field("web", max_length=40, examples=["web", "store", "app"])
    occurred_at: AwareDatetime | None = Field(None, description="When the order completed; defaults to the event time.")
    line_items: list[LineItem] = Field(default_factory=list, max_length=500)
    shipping_cost: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=4,
                                          description="What delivering the order cost the partner (not the customer).")
    discount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=4,
                                     description="Price reduction granted on the order; `amount` is after it.")


class OrderRefunded(PartnerPayload):
    """An order was refunded, in full (no amount) or in part (amount)."""

    EVENT_TYPE: ClassVar[str] = "order.refunded"
    order_id: str = Field(min_length=1, max_length=100)
    amount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=4,
                                   description="Refunded amount; omitted means the whole order.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    reason: str | None = Field(None, max_length=500)
    occurred_at: AwareDatetime | None = None


class OrderCancelled(PartnerPayload):
    """An order was cancelled: it no longer counts as a purchase."""

    EVENT_TYPE: ClassVar[str] = "order.cancelled"
    order_id: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(None, max_length=500)
    occurred_at: AwareDatetime | None = None


class InteractionLogged(PartnerPayload):
    """A touchpoint: an email, call, visit, support ticket, social message…"""

    EVENT_TYPE: ClassVar[str] = "interaction.logged"
    channel: Channel
    direction: Direction = Direction.INBOUND
    outcome: str | None = Field(None, max_length=100, examples=["resolved", "opened", "no_answer"])
    summary: str | None = Field(None, max_length=2000)
    occurred_at: AwareDatetime | None = None


class FeedbackSubmitted(PartnerPayload):
    """The customer's evaluation: NPS, CSAT, and perceived against expected (required) value."""

    EVENT_TYPE: ClassVar[str] = "feedback.submitted"
    nps: int | None = Field(None, ge=0, le=10)
    csat: int | None = Field(None, ge=1, le=5)
    perceived_value: float | None = Field(None, ge=0, le=10, description="Value the customer perceives, 0–10.")
    expected_value: float | None = Field(None, ge=0, le=10, description="Value the customer requires, 0–10.")
    proposition_id: str | None = Field(None, max_length=100, description="The value proposition this answers, if any.")
    comment: str | None = Field(None, max_length=5000)
    occurred_at: AwareDatetime | None = None


class LeadCaptured(PartnerPayload):
    """A prospect showed interest (form, event, campaign)."""

    EVENT_TYPE: ClassVar[str] = "lead.captured"
    campaign: str | None = Field(None, max_length=200)
    lead_source: str | None = Field(None, max_length=200, examples=["webinar", "referral"])
    qualified: bool = Field(False, description="Marketing-qualified: moves the customer to Acquisition.")
    referred_by: str | None = Field(None, max_length=200, description="Partner id of the referring customer.")
    occurred_at: AwareDatetime | None = None


class ConsentChanged(PartnerPayload):
    """The customer granted or withdrew consent for purposes."""

    EVENT_TYPE: ClassVar[str] = "consent.changed"
    consent: dict[str, bool] = Field(min_length=1)
    occurred_at: AwareDatetime | None = None


class ErasureRequested(PartnerPayload):
    """The customer asked to be forgotten (GDPR art. 17)."""

    EVENT_TYPE: ClassVar[str] = "erasure.requested"
    reason: str | None = Field(None, max_length=500)


class DealUpdated(PartnerPayload):
    """An opportunity at the partner was opened or moved (pipeline and stage by key)."""

    EVENT_TYPE: ClassVar[str] = "deal.updated"
    deal_id: str = Field(min_length=1, max_length=100)
    pipeline: str = Field("sales", max_length=100)
    stage: str = Field(max_length=100, examples=["qualified", "proposal", "won", "lost"])
    amount: Decimal | None = Field(None, ge=0, max_digits=14, decimal_places=4)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    expected_close: datetime | None = None
    owner: str | None = Field(None, max_length=200)
    lost_reason: str | None = Field(None, max_length=500)
    occurred_at: AwareDatetime | None = None


class CustomEvent(PartnerPayload):
    """An event of a type an admin registered (`POST /v1/event-types`), such as `order.shipped`.

    Its `data` is checked against the JSON Schema of the type's version: the one `dataschema` names
    (`urn:crm:schema:<type>:v<N>`), else the newest. `identifiers` and `occurred_at` mean what they mean in
    every event; every other field is the registered schema's. Not in `PARTNER_EVENT_TYPES`: the types are
    data, served in the AsyncAPI document from interaction's registry.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    EVENT_TYPE: ClassVar[str] = "custom"  # the envelope's `type` names the registered type
    occurred_at: AwareDatetime | None = None


PARTNER_EVENT_TYPES = by_event_type(
    CustomerIdentified, CustomerUpdated, OrderCompleted, OrderRefunded, OrderCancelled, InteractionLogged,
    FeedbackSubmitted, LeadCaptured, ConsentChanged, ErasureRequested, DealUpdated,
)


def occurred(payload: Payload, event_time: datetime) -> datetime:
    """When the fact happened: the payload's `occurred_at` if given, else the event time."""
    return getattr(payload, "occurred_at", None) or event_time
