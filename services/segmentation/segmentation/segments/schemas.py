import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Kind = Literal["rfm", "cluster", "abc", "value_tier", "portfolio", "rule"]


class SegmentRead(BaseModel):
    segment_id: uuid.UUID
    key: str = Field(examples=["rfm:default:champions"])
    kind: Kind
    family: str
    name: str
    description: str | None
    definition: dict[str, Any] | None
    summary: dict[str, Any] | None = Field(description="Size, revenue share, average value, movement at the last run.")
    last_run_id: uuid.UUID | None
    updated_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentRead]
    next_cursor: str | None


class RuleSegmentCreate(BaseModel):
    key: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$", examples=["vip-eu"])
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$", examples=["VIP EU"])
    description: str | None = Field(None, max_length=1000, pattern=r"^[^\x00]*$")
    rule: dict[str, Any] = Field(examples=[{"all": [
        {"field": "last_purchase_at", "op": "within_last_days", "value": 30},
        {"field": "spend", "op": "gte", "value": 500}]}])
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="Currency of `spend` (reporting currency).")


class RulePreviewRequest(BaseModel):
    rule: dict[str, Any]
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class RulePreview(BaseModel):
    count: int
    sample: list[uuid.UUID] = Field(description="Up to 10 matching customer ids.")


class Member(BaseModel):
    customer_id: uuid.UUID
    entered_at: datetime


class MemberPage(BaseModel):
    items: list[Member]
    next_cursor: str | None


class MembershipRecord(BaseModel):
    segment_id: uuid.UUID
    segment_key: str
    segment_name: str
    kind: Kind
    entered_at: datetime
    left_at: datetime | None
    entered_run_id: uuid.UUID | None
    left_run_id: uuid.UUID | None


class MembershipHistoryPage(BaseModel):
    customer_id: uuid.UUID
    items: list[MembershipRecord]
    next_cursor: str | None
