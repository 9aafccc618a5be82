"""Events the lifecycle service publishes on `lifecycle.events`, keyed and subjected by customer id."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.contracts.envelope import Payload, by_event_type

SOURCE = "/services/lifecycle"


class Stage(StrEnum):
    APPROACH = "approach"
    ACQUISITION = "acquisition"
    DEVELOPMENT = "development"
    RETENTION = "retention"
    LOYALTY = "loyalty"
    CHURNED = "churned"


class StageChanged(Payload):
    """A customer moved from one lifecycle stage to another."""

    EVENT_TYPE: ClassVar[str] = "stage.changed"
    customer_id: uuid.UUID
    from_stage: Stage | None = Field(description="None when the customer enters the lifecycle.")
    to_stage: Stage
    changed_at: datetime
    reason: str = Field(examples=["first purchase"])
    trigger_event_id: str | None = None
    version: int | None = Field(
        None,
        ge=1,
        description=(
            "The owner's order of this customer's stage: strictly greater than the version of every earlier "
            "stage.changed of the customer (gaps allowed). A copy applies an event only if its version is greater "
            "than the one it stored; `changed_at` is business time and may go back (a re-derivation after a late "
            "event). Absent on events published before versions existed: a copy that holds a version ignores them."
        ),
    )


class StageCleared(Payload):
    """A customer's facts no longer give it any lifecycle stage (every purchase cancelled, say): lifecycle holds
    no stage for it any more. The next stage it gets comes as a stage.changed with a greater version."""

    EVENT_TYPE: ClassVar[str] = "stage.cleared"
    customer_id: uuid.UUID
    from_stage: Stage = Field(description="The stage the customer had.")
    changed_at: datetime = Field(description="When lifecycle found the customer without a stage (business time).")
    reason: str = Field(examples=["no stage left: every purchase cancelled"])
    version: int = Field(
        ge=1,
        description="The owner's order, shared with stage.changed: greater than that of the customer's last stage.changed. "
        "A copy applies it, as it applies a stage.changed, only if it is greater than the version it stored.",
    )


def stage_of(event: StageChanged | StageCleared) -> Stage | None:
    """The stage a stage event leaves the customer in (None: no stage)."""
    return event.to_stage if isinstance(event, StageChanged) else None


STAGE_EVENT_TYPES = by_event_type(StageChanged, StageCleared)


class DealStageChanged(Payload):
    """A deal moved between stages of its pipeline (won and lost are terminal stages)."""

    EVENT_TYPE: ClassVar[str] = "deal.stage_changed"
    customer_id: uuid.UUID
    deal_id: uuid.UUID
    pipeline: str
    from_stage: str | None = None
    to_stage: str
    status: str = Field(pattern="^(open|won|lost)$", examples=["open"])
    changed_at: datetime


LIFECYCLE_EVENT_TYPES = by_event_type(StageChanged, StageCleared, DealStageChanged)
