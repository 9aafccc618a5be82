import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.validation import NO_NUL

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
    version: int = Field(description="Rule segments: the current version of the rule (1 when saved, +1 per edit).")
    archived_at: datetime | None = Field(description="Archived rule segments are no longer evaluated nor listed.")
    updated_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentRead]
    next_cursor: str | None


class RuleSegmentCreate(BaseModel):
    key: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$", examples=["vip-eu"])
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL, examples=["VIP EU"])
    description: str | None = Field(None, max_length=1000, pattern=NO_NUL)
    rule: dict[str, Any] = Field(
        examples=[
            {
                "all": [
                    {"field": "last_purchase_at", "op": "within_last_days", "value": 30},
                    {"field": "spend", "op": "gte", "value": 500},
                ]
            },
            {"field": "event_count", "event_type": "order.shipped", "within_days": 30, "op": "gte", "value": 2},
        ]
    )
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="Currency of `spend` (reporting currency).")


class RuleSegmentEdit(BaseModel):
    """What changes; every edit is a new version and re-evaluates the members."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=NO_NUL)
    description: str | None = Field(None, max_length=1000, pattern=NO_NUL)
    rule: dict[str, Any] | None = Field(None, examples=[{"field": "spend", "op": "gte", "value": 800}])
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class SegmentVersion(BaseModel):
    version: int
    name: str
    description: str | None
    definition: dict[str, Any]
    created_at: datetime


class SegmentVersionList(BaseModel):
    segment_id: uuid.UUID
    items: list[SegmentVersion] = Field(description="Newest first.")


class SegmentHistoryRecord(BaseModel):
    customer_id: uuid.UUID
    entered_at: datetime
    entered_version: int | None = Field(description="The rule version whose evaluation made the entry.")
    entered_run_id: uuid.UUID | None
    left_at: datetime | None
    left_version: int | None = Field(description="The rule version whose evaluation (or archive) made the exit.")
    left_run_id: uuid.UUID | None


class SegmentHistoryPage(BaseModel):
    segment_id: uuid.UUID
    items: list[SegmentHistoryRecord]
    next_cursor: str | None


class RulePreviewRequest(BaseModel):
    rule: dict[str, Any]
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")


class RulePreview(BaseModel):
    count: int
    sample: list[uuid.UUID] = Field(description="Up to 10 matching customer ids.")


class Member(BaseModel):
    customer_id: uuid.UUID
    entered_at: datetime
    entered_version: int | None
    value: Decimal | None = Field(description="CLV, as clv last published it.")
    value_currency: str | None
    tier: str | None
    stage: str | None


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
    entered_version: int | None
    left_version: int | None


class MembershipHistoryPage(BaseModel):
    customer_id: uuid.UUID
    items: list[MembershipRecord]
    next_cursor: str | None
