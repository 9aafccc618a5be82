from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from lifecycle.rules.engine import RULE_ORDER, RuleParameters
from lifecycle.stages.schemas import RederiveResult
from lifecycle.text import text


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
    description: text(1000) = ""
    created_by: text(200) | None = None


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: RuleParameters


class RuleSetApplied(BaseModel):
    rule_set: RuleSetRead
    result: RederiveResult
