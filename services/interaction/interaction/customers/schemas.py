import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field


class IdentifierRead(BaseModel):
    kind: str = Field(examples=["source", "email", "phone"], description="'source': a partner's own id for the customer.")
    source: str = Field(examples=["shop-eu"], description="The partner, for kind 'source'; '' for email and phone.")
    external_id: str = Field(examples=["C-1001"], description="The id, normalised (emails lower-case, phones E.164).")


class IdentifierPage(BaseModel):
    items: list[IdentifierRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")


class AttributeRead(BaseModel):
    value: str | int | float | bool | None
    type: str = Field(examples=["string", "number", "boolean", "date", "null"])
    source: str
    updated_at: datetime = Field(description="When the partner says the value was set (the event's occurred_at).")


class ConsentRead(BaseModel):
    granted: bool
    source: str
    updated_at: datetime


class PurchaseTotalRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    purchase_count: int = Field(examples=[3], description="Orders not cancelled.")
    total_spend: Decimal = Field(examples=["149.70"], description="Net of refunds.")
    average_spend: Decimal = Field(examples=["49.90"])
    refunded: Decimal = Field(examples=["0"])
    last_purchase_at: datetime | None


class ScoreRead(BaseModel):
    score: int
    at: datetime


class CustomerProfileRead(BaseModel):
    """The interaction service's part of the 360° view."""

    customer_id: uuid.UUID
    resolved_from: uuid.UUID | None = Field(None, description="Set when the requested id was merged into this customer.")
    first_seen_at: datetime
    last_seen_at: datetime | None
    erased_at: datetime | None = None
    identifiers: list[IdentifierRead]
    attributes: dict[str, AttributeRead]
    consent: dict[str, ConsentRead]
    purchase_totals: list[PurchaseTotalRead] = Field(description="Per currency: money is never summed across currencies.")
    purchase_count: int
    last_purchase_at: datetime | None
    preferred_channel: str | None
    last_touchpoints: dict[str, datetime] = Field(description="Latest touchpoint (interaction.logged) per channel.")
    latest_nps: ScoreRead | None
    latest_csat: ScoreRead | None
    partners: list[str] = Field(description="Partners whose events mention the customer.")


class CustomerSummaryRead(BaseModel):
    customer_id: uuid.UUID
    first_seen_at: datetime
    last_seen_at: datetime | None
    purchase_count: int
    last_purchase_at: datetime | None
    preferred_channel: str | None
    partners: list[str]


class CustomerPage(BaseModel):
    items: list[CustomerSummaryRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")


class TimelineEntryRead(BaseModel):
    id: uuid.UUID
    type: str = Field(examples=["order.completed"])
    occurred_at: datetime
    source: str = Field(description="The partner that sent the event.")
    event_id: str
    channel: str | None
    data: dict[str, Any]


class TimelinePage(BaseModel):
    items: list[TimelineEntryRead]
    next_cursor: str | None = None


class ErasureRead(BaseModel):
    customer_id: uuid.UUID
    erased_at: datetime
    erased_ids: list[uuid.UUID] = Field(description="The customer and the customers merged into it.")


class CustomerExport(BaseModel):
    """Everything the interaction service holds about a customer (R8)."""

    profile: CustomerProfileRead
    purchases: list[dict[str, Any]]
    adjustments: list[dict[str, Any]]
    timeline: list[TimelineEntryRead]
    deals: list[dict[str, Any]]
    merges: list[dict[str, Any]]


class ProfileState(BaseModel):
    """A customer's published profile as copies of `customer.updated` must hold it."""

    customer_id: uuid.UUID
    attributes: dict[str, str | int | float | bool | None] = Field(
        description="Every custom attribute the customer holds, PII-looking names left out (as published)."
    )
    consent: dict[str, bool] = Field(description="Current consent per purpose.")
    version: int = Field(description="The version of the last customer.updated published for the customer.")


class ProfileStatePage(BaseModel):
    items: list[ProfileState]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")
