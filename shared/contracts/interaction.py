"""Events the interaction service publishes on `interaction.events`, keyed and subjected by customer id.

They carry everything consumers need, so no consumer calls back over HTTP. Identity: when two customers
merge, `customer.merged` says which id survives; consumers fold the merged-away customer's facts into the
survivor (and keep answering for the old id as the survivor). `customer.unmerged` undoes one merge and lists
the purchases and touchpoints that move back to the restored customer. Facts (purchases, refunds, touchpoints,
feedback, leads) carry their `home_customer_id` and identity events interaction's identity `version`, so a copy
can follow them in any arrival order (shared/contracts/identity.py). `customer.erased` asks every service
to remove what it holds about the customer beyond anonymous aggregates (R8).
"""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.envelope import Payload, by_event_type

SOURCE = "/services/interaction"


class CustomerCreated(Payload):
    """A customer was seen for the first time and given an internal id."""

    EVENT_TYPE: ClassVar[str] = "customer.created"
    customer_id: uuid.UUID
    source: str = Field(description="The partner whose event introduced the customer.")
    first_seen_at: datetime


class CustomerUpdated(Payload):
    """The customer's attributes or consent changed (an event, a merge or an unmerge): the whole published
    profile after the change. Carries no PII: attribute names and non-identifying values only."""

    EVENT_TYPE: ClassVar[str] = "customer.updated"
    customer_id: uuid.UUID
    source: str = Field(description="The partner whose event made the change; interaction's own for a merge or unmerge.")
    attributes: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="Every custom attribute the customer holds, PII-looking names left out; null: removed. "
        "Events without a version carry the changed attributes only.",
    )
    consent: dict[str, bool] = Field(default_factory=dict, description="Current consent per purpose.")
    updated_at: datetime
    version: int | None = Field(
        None,
        description="Interaction's profile order: greater for a later state of the customer's profile. A copy "
        "keeps the state with the greatest (shared/contracts/ordering.py). Absent on events published before "
        "versions existed: they carry changes, merged into a copy that holds no version yet.",
    )


class CustomerMerged(Payload):
    """Two customers turned out to be one: `merged_id`'s history now belongs to `survivor_id`."""

    EVENT_TYPE: ClassVar[str] = "customer.merged"
    customer_id: uuid.UUID = Field(description="The survivor (also the key).")
    merge_id: uuid.UUID = Field(description="Audit record of the merge; unmerge names it.")
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    reason: str = Field(examples=["email ada@example.com shared by two customers"])
    merged_at: datetime
    version: int | None = Field(
        None,
        description="Interaction's identity sequence, increasing in the order "
        "merges and unmerges commit (shared/contracts/identity.py).",
    )


class CustomerUnmerged(Payload):
    """A merge was undone: `restored_id` exists again with the purchases and touchpoints listed here."""

    EVENT_TYPE: ClassVar[str] = "customer.unmerged"
    customer_id: uuid.UUID = Field(description="The survivor of the undone merge (also the key).")
    merge_id: uuid.UUID
    survivor_id: uuid.UUID
    restored_id: uuid.UUID
    purchase_ids: list[uuid.UUID] = Field(default_factory=list, description="Purchases moving back to restored_id.")
    touchpoint_ids: list[uuid.UUID] = Field(default_factory=list, description="Touchpoints moving back.")
    unmerged_at: datetime
    version: int | None = Field(
        None,
        description="Interaction's identity sequence, increasing in the order "
        "merges and unmerges commit (shared/contracts/identity.py).",
    )


class CustomerErased(Payload):
    """The customer's PII was erased; every service removes what it holds about this customer (R8)."""

    EVENT_TYPE: ClassVar[str] = "customer.erased"
    customer_id: uuid.UUID
    erased_at: datetime


class PurchaseLine(BaseModel):
    """One line of the order as the partner sent it (cost and category only when the partner gave them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    sku: str
    quantity: int = 1
    unit_price: Decimal
    unit_cost: Decimal | None = None
    category: str | None = None


class PurchaseRecorded(Payload):
    """A purchase was stored for a customer; carries all that consumers need, so none calls back.

    `lines`, `shipping_cost` and `discount` are empty when the partner did not send them (and in events
    published before they existed)."""

    EVENT_TYPE: ClassVar[str] = "purchase.recorded"
    customer_id: uuid.UUID
    purchase_id: uuid.UUID
    source: str
    order_id: str
    amount: Decimal
    currency: str
    channel: str
    occurred_at: datetime
    lines: list[PurchaseLine] = Field(default_factory=list)
    shipping_cost: Decimal | None = None
    discount: Decimal | None = Field(None, description="Price reduction granted; `amount` is after it.")
    home_customer_id: uuid.UUID | None = Field(
        None,
        description="The customer whose identifier the fact came in under; it stays with that customer's "
        "live survivor through merges and unmerges (shared/contracts/identity.py). Absent in "
        "events published before it existed: the customer id stands in.",
    )


class PurchaseRefunded(Payload):
    """Part or all of a purchase was refunded (or the order cancelled: `cancelled` and the full amount)."""

    EVENT_TYPE: ClassVar[str] = "purchase.refunded"
    customer_id: uuid.UUID
    purchase_id: uuid.UUID
    refund_id: uuid.UUID
    source: str
    order_id: str
    amount: Decimal = Field(description="Refunded now, in the purchase's currency (not cumulative).")
    currency: str
    cancelled: bool = Field(False, description="The order was cancelled: it no longer counts as a purchase.")
    occurred_at: datetime
    home_customer_id: uuid.UUID | None = Field(
        None,
        description="The customer whose identifier the fact came in under; it stays with that customer's "
        "live survivor through merges and unmerges (shared/contracts/identity.py). Absent in "
        "events published before it existed: the customer id stands in.",
    )


class TouchpointRecorded(Payload):
    """The customer interacted through a channel, possibly through a partner."""

    EVENT_TYPE: ClassVar[str] = "touchpoint.recorded"
    customer_id: uuid.UUID
    touchpoint_id: uuid.UUID
    source: str = Field(description="The partner the touchpoint came from.")
    channel: str
    direction: str
    outcome: str | None = None
    occurred_at: datetime
    home_customer_id: uuid.UUID | None = Field(
        None,
        description="The customer whose identifier the fact came in under; it stays with that customer's "
        "live survivor through merges and unmerges (shared/contracts/identity.py). Absent in "
        "events published before it existed: the customer id stands in.",
    )


class FeedbackRecorded(Payload):
    """The customer's evaluation: NPS, CSAT, perceived against expected value (0–10)."""

    EVENT_TYPE: ClassVar[str] = "feedback.recorded"
    customer_id: uuid.UUID
    feedback_id: uuid.UUID
    source: str
    nps: int | None = None
    csat: int | None = None
    perceived_value: float | None = None
    expected_value: float | None = None
    proposition_id: str | None = None
    occurred_at: datetime
    home_customer_id: uuid.UUID | None = Field(
        None,
        description="The customer whose identifier the fact came in under; it stays with that customer's "
        "live survivor through merges and unmerges (shared/contracts/identity.py). Absent in "
        "events published before it existed: the customer id stands in.",
    )


class LeadCaptured(Payload):
    """A prospect showed interest; `qualified` marks a marketing-qualified lead."""

    EVENT_TYPE: ClassVar[str] = "lead.captured"
    customer_id: uuid.UUID
    source: str
    campaign: str | None = None
    lead_source: str | None = None
    qualified: bool = False
    referred_by_customer_id: uuid.UUID | None = None
    occurred_at: datetime
    home_customer_id: uuid.UUID | None = Field(
        None,
        description="The customer whose identifier the fact came in under; it stays with that customer's "
        "live survivor through merges and unmerges (shared/contracts/identity.py). Absent in "
        "events published before it existed: the customer id stands in.",
    )


class DealUpdated(Payload):
    """A partner's opportunity for this customer was opened or moved (partner-published deal events)."""

    EVENT_TYPE: ClassVar[str] = "deal.updated"
    customer_id: uuid.UUID
    source: str
    deal_id: str = Field(description="The partner's deal id; unique per source.")
    pipeline: str
    stage: str
    amount: Decimal | None = None
    currency: str | None = None
    expected_close: datetime | None = None
    owner: str | None = None
    lost_reason: str | None = None
    occurred_at: datetime


class CustomEventRecorded(Payload):
    """A partner's event of an admin-registered type (custom event types) was stored on the customer's timeline.

    One domain event type for every registered type: `event_type` names it (a webhook filters on it,
    `{"event_type": "order.shipped"}`), `schema_version` the version its `data` was checked against.
    """

    EVENT_TYPE: ClassVar[str] = "custom_event.recorded"
    customer_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The timeline entry's id.")
    source: str = Field(description="The partner that sent the event.")
    event_type: str = Field(examples=["order.shipped"], description="The registered type.")
    schema_version: int = Field(ge=1)
    occurred_at: datetime
    # Optional, so that erasure's redaction (shared/contracts/redaction.py) drops it whole: its fields are the
    # registered schema's, and nothing says which of them are personal.
    data: dict[str, Any] = Field(default_factory=dict, description="The event's data as validated, without `identifiers`.")
    home_customer_id: uuid.UUID | None = Field(
        None, description="The customer whose identifier the fact came in under (shared/contracts/identity.py)."
    )


INTERACTION_EVENT_TYPES = by_event_type(
    CustomerCreated,
    CustomerUpdated,
    CustomerMerged,
    CustomerUnmerged,
    CustomerErased,
    PurchaseRecorded,
    PurchaseRefunded,
    TouchpointRecorded,
    FeedbackRecorded,
    LeadCaptured,
    DealUpdated,
    CustomEventRecorded,
)


def home(p: Any) -> uuid.UUID:
    """The customer a fact came in under: its `home_customer_id` (shared/contracts/identity.py); events published
    before homes existed (or facts without one) stand for their customer."""
    return getattr(p, "home_customer_id", None) or p.customer_id
