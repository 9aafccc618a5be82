from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class FunnelStep(BaseModel):
    stage: str
    entered: int = Field(
        description="Customers who were in this stage themselves (per the stage history) before "
        "`to`. A stage jumped over is not entered."
    )
    skipped: int = Field(description="Customers who never entered this stage before `to` but entered a later one.")
    converted_to_next: int | None = Field(
        description="Customers who entered this stage and, at or after their "
        "first entry into it, the next stage; null for the last."
    )
    conversion_to_next: float | None = Field(
        description="converted_to_next / entered; null for the last stage or when none entered this one."
    )


class FunnelCohort(BaseModel):
    cohort: datetime | None = Field(description="Month of the customers' first lifecycle entry; null: all together.")
    customers: int = Field(
        description="Customers whose lifecycle began in the period (in this cohort), whatever stage it began in."
    )
    steps: list[FunnelStep]


class FunnelRead(BaseModel):
    start: datetime
    end: datetime
    cohorts: list[FunnelCohort]


class TimeInStage(BaseModel):
    stage: str
    stays: int = Field(description="Completed stays entered within the period.")
    median_seconds: float
    p90_seconds: float
    mean_seconds: float


class TimeInStageRead(BaseModel):
    start: datetime
    end: datetime
    stages: list[TimeInStage]


class DistributionPoint(BaseModel):
    at: datetime
    counts: dict[str, int] = Field(description="Customers in each stage at that instant.")


class DistributionRead(BaseModel):
    interval: Interval
    points: list[DistributionPoint]


class ChurnRead(BaseModel):
    start: datetime
    end: datetime
    active_at_start: int = Field(description="Customers in Development, Retention or Loyalty at `start`.")
    became_active: int = Field(description="Customers entering an active stage from outside one in the period.")
    churned: int
    churn_rate: float | None = Field(description="churned / (active_at_start + became_active).")
    churned_at_start: int
    reactivated: int
    reactivation_rate: float | None = Field(description="reactivated / (churned_at_start + churned).")


class StageValue(BaseModel):
    stage: str
    win_probability: Decimal
    deals: int
    amount: Decimal
    weighted: Decimal


class PipelineForecast(BaseModel):
    pipeline: str
    currency: str
    deals: int
    amount: Decimal = Field(description="Σ amount of open deals.")
    weighted: Decimal = Field(description="Σ amount × win probability of the deal's stage (the forecast).")
    stages: list[StageValue]


class PipelineValueRead(BaseModel):
    forecasts: list[PipelineForecast]
