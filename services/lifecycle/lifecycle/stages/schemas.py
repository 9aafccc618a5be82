import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.lifecycle import Stage
from shared.validation import text


class StageHistoryRead(BaseModel):
    stage: Stage
    from_stage: Stage | None
    entered_at: datetime
    left_at: datetime | None
    duration_seconds: float | None = Field(description="left_at − entered_at; null while the stage lasts.")
    rule: str | None = Field(description="The rule that moved the customer (`manual` for a person's move).")
    reason: str
    trigger_event_id: str | None
    trigger_source: str | None
    actor: str | None = Field(description="The person, for manual moves.")
    rule_set_version: int | None


class CustomerLifecycleRead(BaseModel):
    """The lifecycle service's part of the 360° view."""

    customer_id: uuid.UUID
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into this one.")
    stage: Stage
    stage_entered_at: datetime
    order_count: int
    total_spend: Decimal | None = Field(
        description="Net spend, when the customer bought in one currency (0 if none); "
        "null for several currencies: see spend_by_currency."
    )
    spend_by_currency: dict[str, Decimal] = Field(
        default_factory=dict, description="Net spend per ISO 4217 currency (never added up)."
    )
    last_purchase_at: datetime | None
    rule_set_version: int | None
    history: list[StageHistoryRead]


class ManualMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_stage: Stage
    reason: Annotated[str, text(1000, 3, examples=["customer asked to pause the contract"])]
    actor: Annotated[str, text(200, examples=["ada@example.com"])] | None = None


class StageMoveCount(BaseModel):
    from_stage: Stage | None
    to_stage: Stage | None = Field(description="null: the customer would leave the lifecycle (no facts left).")
    customers: int


class RederiveResult(BaseModel):
    evaluated: int = Field(description="Customers replayed.")
    moved: int = Field(description="Customers whose current stage changes.")
    moves: list[StageMoveCount]


def result_of(outcome) -> RederiveResult:  # stages.service.Outcome
    moves = [
        StageMoveCount(from_stage=f, to_stage=t, customers=n)
        for (f, t), n in sorted(outcome.moves.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
    return RederiveResult(evaluated=outcome.evaluated, moved=sum(outcome.moves.values()), moves=moves)


class StageState(BaseModel):
    """A customer's current stage as copies of `stage.changed` must hold it."""

    customer_id: uuid.UUID
    stage: Stage
    changed_at: datetime = Field(description="When the customer entered the stage (business time).")
    version: int | None = Field(description="The version of the last stage.changed published for the customer.")


class StageStatePage(BaseModel):
    items: list[StageState]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")
