"""Events the segmentation service publishes on `segmentation.events`: membership changes keyed and subjected by
customer id; a run's completion (about every customer at once) without a subject."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.contracts.envelope import Payload, by_event_type
from shared.contracts.ordering import latest_per_key

SOURCE = "/services/segmentation"


class SegmentKind(StrEnum):
    RFM = "rfm"
    CLUSTER = "cluster"
    VALUE_TIER = "value_tier"
    ABC = "abc"
    PORTFOLIO = "portfolio"
    RULE = "rule"


class SegmentMembershipChanged(Payload):
    """A customer entered or left a segment."""

    EVENT_TYPE: ClassVar[str] = "segment.membership_changed"
    customer_id: uuid.UUID
    segment_id: uuid.UUID
    segment_key: str = Field(examples=["rfm:champions", "rule:vip-eu"], description="Stable, human-readable key.")
    segment_name: str = Field(examples=["Champions"])
    kind: SegmentKind
    change: str = Field(pattern="^(entered|left)$", examples=["entered"])
    changed_at: datetime
    run_id: uuid.UUID | None = Field(None, description="The run that decided it; None for rule segments kept live.")
    version: int | None = Field(
        None,
        ge=1,
        description=(
            "The owner's order of this customer's membership of this segment: strictly greater than the version of "
            "every earlier change of the same customer and segment, in the order segmentation committed them (gaps "
            "allowed). A copy applies a change only if its version is greater than the one it stored; `changed_at` "
            "is when segmentation decided and may go back (two replicas' clocks, a refresh that read its clock "
            "before another committed). Absent on events published before versions existed: a copy that holds a "
            "version ignores them."
        ),
    )


class SegmentationRunCompleted(Payload):
    """A run finished: every customer's scores, cluster or tier may have changed, also where no membership did
    (an RFM score moves inside its segment), so a copy of a customer's segmentation taken before it is stale."""

    EVENT_TYPE: ClassVar[str] = "segmentation.run_completed"
    run_id: uuid.UUID
    kind: str = Field(examples=["rfm", "clustering", "tiers"])
    family: str = Field(examples=["rfm:default"], description="The segments the run rewrote.")
    finished_at: datetime


def latest_membership_changes(changes: Iterable[SegmentMembershipChanged]) -> list[SegmentMembershipChanged]:
    """The change that supersedes the others per customer and segment (shared/contracts/ordering.py): what a
    copy folds a batch of changes to before it writes them."""
    return list(
        latest_per_key(changes, lambda p: (p.customer_id, p.segment_key), lambda p: p.version, lambda p: p.changed_at).values()
    )


SEGMENTATION_EVENT_TYPES = by_event_type(SegmentMembershipChanged, SegmentationRunCompleted)
