import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, field_validator


class TransactionModelName(StrEnum):
    BGNBD = "bgnbd"
    MBGNBD = "mbgnbd"
    PARETO_NBD = "pareto_nbd"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FitCreate(BaseModel):
    """Fit a transaction model and the Gamma-Gamma spend model on one currency's purchases."""

    model: TransactionModelName = TransactionModelName.BGNBD
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    time_unit_days: float | None = Field(None, gt=0, le=366, description="Model time unit in days (default: service setting, 7 = weeks).")
    holdout_days: int = Field(0, ge=0, le=3650, description="Days at the end kept out of the fit to validate it.")
    as_of: AwareDatetime | None = Field(None, description="End of the observation period (default: now).")

    @field_validator("as_of")
    @classmethod
    def _plausible(cls, v: datetime | None) -> datetime | None:
        if v is not None and not 1970 <= v.year <= 2200:
            raise ValueError("as_of must be between 1970 and 2200")
        return v


class ModelReport(BaseModel):
    model: str
    params: dict[str, float]
    std_errors: dict[str, float | None]
    log_likelihood: float
    aic: float
    bic: float
    converged: bool
    iterations: int
    message: str
    customers: float
    rows: int = Field(description="Distinct (x, t_x, T) rows the likelihood was evaluated on.")


class HoldoutBucket(BaseModel):
    frequency: str = Field(examples=["0", "1", "7+"], description="Repeat purchases in the calibration period.")
    customers: int
    actual_mean: float = Field(description="Mean repeat purchases in the holdout period.")
    predicted_mean: float = Field(description="Model's conditional expectation for the holdout period.")


class Diagnostics(BaseModel):
    holdout_days: int
    actual_total: float
    predicted_total: float
    mean_absolute_error: float = Field(description="Per customer, holdout purchases predicted vs actual.")
    buckets: list[HoldoutBucket]


class FitRead(BaseModel):
    id: uuid.UUID
    version: int
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    model: TransactionModelName
    currency: str
    time_unit_days: float
    as_of: datetime
    holdout_days: int
    calibration_end: datetime
    customers: int | None = None
    repeat_customers: int | None = None
    transactions: ModelReport | None = None
    spend: ModelReport | None = None
    spend_error: str | None = None
    diagnostics: Diagnostics | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime


class FitPage(BaseModel):
    items: list[FitRead]
    next_cursor: str | None = None


class ComparisonRow(BaseModel):
    fit_id: uuid.UUID
    version: int
    model: TransactionModelName
    customers: int | None
    log_likelihood: float
    aic: float
    bic: float
    converged: bool
    holdout_mean_absolute_error: float | None


class Comparison(BaseModel):
    currency: str
    fits: list[ComparisonRow]
    best_by_aic: uuid.UUID | None
    best_by_bic: uuid.UUID | None
    best_by_holdout: uuid.UUID | None
    note: str = Field(description="What the comparison means.")
