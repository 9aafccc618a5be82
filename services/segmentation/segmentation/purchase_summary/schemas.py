import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class CurrencySummaryRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    order_count: int = Field(examples=[3])
    total_spend: Decimal = Field(examples=["149.70"])
    first_purchase_at: datetime
    last_purchase_at: datetime


class CustomerSegmentationRead(BaseModel):
    """The segmentation service's part of the 360° view."""

    customer_id: uuid.UUID
    order_count: int
    last_purchase_at: datetime
    by_currency: list[CurrencySummaryRead]
