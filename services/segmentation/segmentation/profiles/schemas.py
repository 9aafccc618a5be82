import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class CurrencySummaryRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    order_count: int = Field(examples=[3])
    total_spend: Decimal = Field(examples=["149.70"], description="Net of refunds; cancelled orders excluded.")
    first_purchase_at: datetime
    last_purchase_at: datetime


class ValueRead(BaseModel):
    clv: Decimal | None
    currency: str | None
    tier: str | None
    probability_alive: float | None
    as_of: datetime | None


class ScoresRead(BaseModel):
    run_id: uuid.UUID
    r: int
    f: int
    m: int
    segment_key: str


class CurrentSegment(BaseModel):
    segment_id: uuid.UUID
    key: str
    name: str
    kind: str
    entered_at: datetime


class CustomerSegmentationRead(BaseModel):
    """The segmentation service's part of the 360° view."""

    customer_id: uuid.UUID
    order_count: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    touchpoint_count: int
    last_touch_at: datetime | None
    by_currency: list[CurrencySummaryRead]
    value: ValueRead
    stage: str | None
    rfm: ScoresRead | None = Field(description="Scores in the latest default-scheme RFM run.")
    segments: list[CurrentSegment]
