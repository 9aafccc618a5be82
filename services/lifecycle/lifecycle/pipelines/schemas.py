import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.validation import Instant, text

Key = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$", examples=["sales"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217")]
Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4, examples=["1200.00"])]


class Outcome(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class PipelineStageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: Key
    name: Annotated[str, text(200, 1)]
    win_probability: Decimal = Field(ge=0, le=1, max_digits=5, decimal_places=4)
    outcome: Outcome = Outcome.OPEN


class PipelineCreate(BaseModel):
    """A pipeline: ordered stages (the list order), at least one won and one lost terminal stage."""

    model_config = ConfigDict(extra="forbid")
    key: Key
    name: Annotated[str, text(200, 1)]
    stages: list[PipelineStageIn] = Field(min_length=3, max_length=50)
    lost_reasons: list[Annotated[str, text(200, 1)]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _terminal_stages(self) -> "PipelineCreate":
        outcomes = [s.outcome for s in self.stages]
        if Outcome.WON not in outcomes or Outcome.LOST not in outcomes or Outcome.OPEN not in outcomes:
            raise ValueError("a pipeline needs at least one open, one won and one lost stage")
        keys = [s.key for s in self.stages]
        if len(set(keys)) != len(keys):
            raise ValueError("stage keys must be unique within the pipeline")
        return self


class PipelineStageRead(BaseModel):
    key: str
    name: str
    position: int
    win_probability: Decimal
    outcome: Outcome


class PipelineRead(BaseModel):
    id: uuid.UUID
    key: str
    name: str
    lost_reasons: list[str]
    stages: list[PipelineStageRead]


class PipelinePage(BaseModel):
    items: list[PipelineRead]


class DealCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    pipeline: Key
    stage: Key | None = Field(None, description="Defaults to the pipeline's first stage.")
    title: Annotated[str, text(300)] | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    expected_close: Instant | None = None
    owner: Annotated[str, text(200)] | None = None

    @model_validator(mode="after")
    def _money(self) -> "DealCreate":
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency go together")
        return self


class DealUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, text(300)] | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    expected_close: Instant | None = None
    owner: Annotated[str, text(200)] | None = None


class DealMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Key
    lost_reason: Annotated[str, text(200, description="Required when moving to a lost stage.")] | None = None
    actor: Annotated[str, text(200, examples=["ada@example.com"])] | None = None


class DealStageRead(BaseModel):
    stage: str
    entered_at: datetime
    left_at: datetime | None
    seconds_in_stage: float = Field(description="Until left_at, or until now for the current stage.")
    actor: str | None
    trigger_event_id: str | None


class DealRead(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    pipeline: str
    stage: str
    status: Outcome
    win_probability: Decimal
    title: str | None
    amount: Decimal | None
    currency: str | None
    expected_close: datetime | None
    owner: str | None
    lost_reason: str | None
    source: str | None
    external_id: str | None
    stage_entered_at: datetime
    created_at: datetime
    updated_at: datetime
    history: list[DealStageRead] = Field(default_factory=list)


class DealPage(BaseModel):
    items: list[DealRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null at the end.")
