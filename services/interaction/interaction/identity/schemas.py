import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.validation import NO_NUL


class MergeRead(BaseModel):
    """One audited merge: `merged_id` was folded into `survivor_id`."""

    id: uuid.UUID
    survivor_id: uuid.UUID
    merged_id: uuid.UUID
    reason: str
    caused_by: list[str] = Field(
        description="The partners whose events linked the two customers (an automatic merge); empty for a merge by a user."
    )
    merged_at: datetime
    undone_at: datetime | None


class MergePage(BaseModel):
    items: list[MergeRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")


class UnmergeRead(MergeRead):
    restored_id: uuid.UUID
    purchase_ids: list[uuid.UUID] = Field(description="Purchases that moved back to the restored customer.")
    touchpoint_ids: list[uuid.UUID] = Field(description="Touchpoints that moved back.")


class MergeCreate(BaseModel):
    """Merge two customers a user knows to be one person; the oldest survives, as for automatic merges."""

    customer_ids: list[uuid.UUID] = Field(min_length=2, max_length=2)
    reason: str = Field("merged by a user", min_length=1, max_length=500, pattern=NO_NUL)
