import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, Field, field_validator


class TransactionModelName(StrEnum):
    BGNBD = "bgnbd"
    MBGNBD = "mbgnbd"
    PARETO_NBD = "pareto_nbd"


class RequestedModel(StrEnum):
    """A model to fit, or `auto`: fit every candidate on the calibration period and keep the one with the lowest
    holdout error."""

    AUTO = "auto"
    BGNBD = "bgnbd"
    MBGNBD = "mbgnbd"
    PARETO_NBD = "pareto_nbd"


# The holdout of a model choice when the request names none: the last 90 days (a choice needs a holdout).
AUTO_HOLDOUT_DAYS = 90


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FitCreate(BaseModel):
    """Fit a transaction model and the Gamma-Gamma spend model on one currency's purchases."""

    model: RequestedModel = RequestedModel.AUTO
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    time_unit_days: float | None = Field(
        None, gt=0, le=366, description="Model time unit in days (default: service setting, 7 = weeks)."
    )
    holdout_days: int | None = Field(
        None,
        ge=0,
        le=3650,
        description=(
            "Days at the end kept out of the fit to validate it (default: 90 for `auto`, which needs a holdout; "
            "0 for a named model)."
        ),
    )
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
    usable: bool = Field(True, description="False: the data cannot support this fit and it is never used to score.")
    problems: list[str] = Field(default_factory=list, description="Why the fit is not usable (empty when it is).")
    fallback_mean_spend: float | None = Field(
        None,
        description=(
            "Spend model only: when the Gamma-Gamma fit is not usable, the population's mean spend per purchase "
            "that scoring uses for every customer instead (its no-heterogeneity limit)."
        ),
    )


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


class CandidateReport(BaseModel):
    """One candidate of a model choice: fitted on the calibration period, judged on the holdout."""

    model: TransactionModelName
    usable: bool
    problems: list[str] = Field(default_factory=list)
    log_likelihood: float | None = None
    aic: float | None = None
    bic: float | None = None
    holdout_mean_absolute_error: float | None = Field(
        None, description="Per customer, holdout repeat purchases predicted vs actual (the criterion)."
    )
    predicted_total: float | None = None
    actual_total: float | None = None


class Selection(BaseModel):
    criterion: str = Field(description="How the model was chosen.")
    chosen: TransactionModelName | None = Field(None, description="None: no candidate was usable.")
    candidates: list[CandidateReport]


class FitRead(BaseModel):
    id: uuid.UUID
    version: int
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    model: RequestedModel = Field(
        description="The model fitted: for an `auto` request, the chosen one once the "
        "fit succeeded (`auto` while it runs or when nothing was usable)."
    )
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
    selection: Selection | None = Field(None, description="For `auto`: every candidate's figures and the choice.")
    usable: bool | None = Field(None, description="Whether scoring may use this fit (succeeded fits only).")
    problems: list[str] = Field(default_factory=list, description="Why the fit is not usable.")
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


class PredictionInput(BaseModel):
    """A customer history in the fit's time unit: repeat purchases, time of the last, age; mean repeat spend."""

    x: float = Field(description="Repeat purchases (purchase days − 1).", examples=[2])
    t_x: float = Field(description="Time of the last purchase since the first, in the fit's time unit.", examples=[30.4])
    T: float = Field(description="Age: time since the first purchase, in the fit's time unit.", examples=[38.9])
    mean_spend: float = Field(0.0, description="Mean value of the repeat purchases (0 without).")


class PredictionRequest(BaseModel):
    """What-if predictions from a fit. The model itself checks the numbers: NaN, negative values or a last
    purchase after the end of the observation are a 422 naming the input."""

    customers: list[PredictionInput] = Field(min_length=1, max_length=1000)
    months: int = Field(12, ge=1, le=600, description="Period of `expected_purchases`.")


class Prediction(BaseModel):
    probability_alive: float
    expected_purchases: float = Field(description="Over the next `months` months.")
    expected_spend: float = Field(description="Expected revenue per future purchase.")


class PredictionResponse(BaseModel):
    fit_id: uuid.UUID
    model: TransactionModelName
    months: int
    predictions: list[Prediction]
