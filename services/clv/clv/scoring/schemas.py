import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from clv.fits.schemas import JobStatus


class ScoringCreate(BaseModel):
    """Score every customer of a currency with a fitted model version."""

    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    fit_id: uuid.UUID | None = Field(None, description="Default: the newest converged fit for the currency.")
    current_months: int | None = Field(None, ge=1, le=120, description="The coming period of `current_value`.")
    horizon_months: int | None = Field(None, ge=1, le=600, description="The lifetime horizon of `clv`.")
    monthly_discount_rate: float | None = Field(None, ge=0, lt=1)
    margin: float | None = Field(None, gt=0, le=1, description="Gross margin as a fraction of revenue.")
    wallet_quantile: float | None = Field(
        None,
        ge=0.55,
        le=0.99,
        description=(
            "Quantile of the purchase rate and basket size the customer's history allows that defines the wallet "
            "behind `potential_value` (default CLV_WALLET_QUANTILE, 0.9)."
        ),
    )


class ScoringSettings(BaseModel):
    current_months: int
    horizon_months: int
    monthly_discount_rate: float
    margin: float
    wallet_quantile: float | None = Field(None, description="Absent on runs made before potential used a wallet.")
    time_unit_days: float


class TierThresholds(BaseModel):
    platinum: float = Field(description="Minimum CLV of platinum (95th percentile).")
    gold: float = Field(description="80th percentile.")
    silver: float = Field(description="50th percentile; below is bronze.")


class ScoringRead(BaseModel):
    id: uuid.UUID
    fit_id: uuid.UUID
    status: JobStatus
    progress: float
    currency: str
    as_of: datetime
    settings: ScoringSettings
    customers: int | None = None
    events_published: int | None = None
    tier_thresholds: TierThresholds | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime


class TierSummary(BaseModel):
    tier: str
    customers: int
    min_clv: float
    total_clv: float
    total_historical_value: float
    total_potential_value: float


class TierReport(BaseModel):
    currency: str
    scoring_run_id: uuid.UUID | None
    tiers: list[TierSummary]


class ValueState(BaseModel):
    """A customer's value in a currency as copies of `customer.value_updated` must hold it (the last published
    tier and version; the amounts are the stored ones, which move under the materiality threshold without an event)."""

    customer_id: uuid.UUID
    currency: str
    clv: float
    tier: str
    probability_alive: float
    as_of: datetime
    version: int | None = Field(description="The version of the last customer.value_updated published for it.")


class ValueStatePage(BaseModel):
    items: list[ValueState]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last page.")
