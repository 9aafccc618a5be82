import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class IdentifierRead(BaseModel):
    source: str = Field(examples=["shop-eu"])
    external_id: str = Field(examples=["C-1001"])


class PurchaseTotalRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    purchase_count: int = Field(examples=[3])
    total_spend: Decimal = Field(examples=["149.70"])
    last_purchase_at: datetime


class CustomerProfileRead(BaseModel):
    """The interaction service's part of the 360° view."""

    customer_id: uuid.UUID
    first_seen_at: datetime
    identifiers: list[IdentifierRead]
    purchase_totals: list[PurchaseTotalRead] = Field(description="Per currency: money is never summed across currencies.")
    purchase_count: int
    last_purchase_at: datetime | None
