import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import text

from lifecycle.rules.engine import RULE_ORDER, RuleParameters
from lifecycle.stages.schemas import StageMoveCount


class RuleSetRead(BaseModel):
    version: int
    parameters: RuleParameters
    description: str
    created_by: str | None
    created_at: datetime
    activated_at: datetime
    active: bool
    rule_order: list[str] = Field(RULE_ORDER, description="The order rules are evaluated in (first match wins).")


class RuleSetPage(BaseModel):
    items: list[RuleSetRead]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for older versions; null at the end.")


class RuleSetCreate(BaseModel):
    """A new version of the rule set; saving it activates it and replays every customer."""

    model_config = ConfigDict(extra="forbid")
    parameters: RuleParameters
    description: Annotated[str, text(1000)] = ""
    created_by: Annotated[str, text(200)] | None = None


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: RuleParameters


class ReplayRunRead(BaseModel):
    """A replay of every customer through a rule-set version (started by saving or re-activating it)."""

    id: uuid.UUID
    rule_set_version: int
    status: str = Field(description="queued | running | succeeded | failed | superseded (a newer run took over)")
    customers_total: int | None
    evaluated: int = Field(description="Customers replayed so far.")
    moved: int = Field(description="Customers whose stage changed so far.")
    moves: list[StageMoveCount]
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class ReplayRunPage(BaseModel):
    items: list[ReplayRunRead]


class RuleSetApplied(BaseModel):
    rule_set: RuleSetRead
    run: ReplayRunRead
