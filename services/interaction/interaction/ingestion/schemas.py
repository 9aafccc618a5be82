from typing import Literal

from pydantic import BaseModel, Field


class IngestItemResult(BaseModel):
    index: int = Field(description="Position of the event in the posted array.")
    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = Field(None, description="The event id, when it could be read.")
    reason: str | None = Field(None, description="Why the event was rejected.")


class IngestResponse(BaseModel):
    """Every item's fate. Accepted events are durable: the response is sent after the commit."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[IngestItemResult]
