import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class CurrencyValueRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    purchase_count: int = Field(examples=[3])
    historical_value: Decimal = Field(description="Revenue realised to date, net of nothing yet.", examples=["149.70"])
    first_purchase_at: datetime
    last_purchase_at: datetime


class CustomerValueRead(BaseModel):
    """The clv service's part of the 360° view."""

    customer_id: uuid.UUID
    by_currency: list[CurrencyValueRead]
