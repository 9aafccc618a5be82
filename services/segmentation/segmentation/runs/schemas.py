import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.validation import Instant


class RunCreate(BaseModel):
    kind: Literal["rfm", "clustering", "tiers"]
    scheme: str | None = Field(
        None, min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$", description="RFM runs: the scheme key (default)."
    )
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="Monetary is counted in this currency.")
    as_of: Instant | None = Field(None, description="Recency and tenure are measured to this instant (now).")
    k: int | None = Field(
        None,
        ge=2,
        le=20,
        description="Clustering runs: use this many clusters instead of "
        "choosing (capped at the number of distinct customers − 1).",
    )


class RunRead(BaseModel):
    run_id: uuid.UUID
    kind: str
    family: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(ge=0, le=1)
    params: dict[str, Any]
    as_of: datetime
    trigger: str
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunPage(BaseModel):
    items: list[RunRead]
    next_cursor: str | None


class Transition(BaseModel):
    from_segment: str | None = Field(description="Segment key in the base run; null: not in the base run.")
    to_segment: str | None = Field(description="Segment key in the other run; null: not in it.")
    customers: int


class Comparison(BaseModel):
    base_run_id: uuid.UUID
    run_id: uuid.UUID
    customers_compared: int
    moved: int = Field(description="Customers whose segment differs between the runs.")
    transitions: list[Transition]


class QuadrantGroup(BaseModel):
    currency: str | None
    basis: str | None = Field(description="clv or revenue: what the value is.")
    customers: int
    average_value: float | None = Field(
        description="Mean value (in `currency`, on `basis`) of the quadrant's customers in this group."
    )


class Quadrant(BaseModel):
    key: str
    name: str
    action: str
    high_value: bool
    high_engagement: bool
    size: int
    revenue_share: float = Field(description="Share of revenue in the run's currency.")
    average_value: float | None = Field(
        description="Mean value of the quadrant's customers in the headline group "
        "(`value_currency`, `value_basis`); null when it has none."
    )
    by_group: list[QuadrantGroup] = Field(description="The same per currency and basis.")


class ValueThreshold(BaseModel):
    currency: str | None
    basis: str | None
    customers: int
    value_threshold: float = Field(description="Median value of the group; high value = at or above it and > 0.")


class PortfolioMatrix(BaseModel):
    run_id: uuid.UUID
    as_of: datetime
    value_threshold: float | None = Field(description="The headline group's threshold.")
    value_currency: str | None = Field(description="Headline group: the run's currency, CLV basis if present.")
    value_basis: str | None
    value_thresholds: list[ValueThreshold] = Field(description="One threshold per currency and basis.")
    engagement_threshold: float
    value_axis: str
    engagement_axis: str
    quadrants: list[Quadrant]


class Distinguishing(BaseModel):
    feature: str
    sd_from_mean: float = Field(description="Centroid minus the overall mean, in standard deviations of the log-scaled feature.")
    words: str


class ClusterRead(BaseModel):
    segment_id: uuid.UUID
    key: str
    name: str
    description: str | None = Field(description="How the cluster differs from the customers overall, in words.")
    size: int
    share: float = Field(description="Share of the run's customers.")
    revenue_share: float
    centroid: dict[str, float]
    distinguishing: list[Distinguishing] = Field(description="Its most different features, largest first.")


class ClusterSet(BaseModel):
    run_id: uuid.UUID
    k: int
    k_fixed: bool = Field(description="k was given in the run request.")
    k_criterion: str = Field(description="How k was chosen.")
    silhouette: float | None
    silhouette_by_k: dict[str, float]
    smallest_share_by_k: dict[str, float] = Field(description="Per candidate k, its smallest cluster's share.")
    clusters: list[ClusterRead]
