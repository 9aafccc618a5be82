from typing import Annotated, ClassVar

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.service import runtime_settings
from shared.settings import ServiceSettings

SCHEMA = "clv"


class ClvSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLV_", extra="ignore")

    service_name: str = "clv"
    # Gross margin as a fraction of revenue: values are margins, not revenue (1.0 = value in revenue terms).
    margin: float = Field(1.0, gt=0, le=1)
    # The models' time unit, in days (7 = weeks, like the literature).
    time_unit_days: float = Field(7.0, gt=0, le=366)
    # Defaults of a scoring run (each run may override them).
    current_months: int = Field(12, ge=1, le=120)
    horizon_months: int = Field(60, ge=1, le=600)
    monthly_discount_rate: float = Field(0.01, ge=0, lt=1)
    # The wallet behind potential value: this quantile of the purchase rate and of the basket size the
    # customer's own history allows (docs/clv.md, Values; Perlich, Rosset et al. 2007).
    wallet_quantile: float = Field(0.9, ge=0.55, le=0.99)
    # A customer's value changed materially (→ customer.value_updated) when the tier changed or the CLV moved
    # by at least max(absolute, relative × previous CLV).
    value_change_absolute: float = Field(1.0, ge=0)
    value_change_relative: float = Field(0.10, ge=0)
    # Scheduled refits: every this many seconds (0 = off), each currency with purchases whose newest fit is
    # older gets a new fit of `refit_model` (`auto`: the model chosen by holdout error) and, if it converges, a
    # scoring run with the default settings.
    refit_interval_s: float = Field(0.0, ge=0)
    refit_model: str = Field("auto", pattern="^(auto|bgnbd|mbgnbd|pareto_nbd)$")
    # Where `reconcile` reads the owners' published state (their state routes; docs/<service>.md, Consistency).
    lifecycle_url: str = "http://127.0.0.1:8004"
    # Fits and scoring runs hold a lease this long, renewed while they run: when a replica dies, another
    # resumes its jobs once the lease lapsed (see shared/jobs.py).
    job_lease_s: float = Field(30.0, ge=1, le=3600)

    renamed_env: ClassVar[dict[str, tuple[str, float]]] = {"refit_interval_hours": ("refit_interval_s", 3600.0)}


# The running service's settings, for an endpoint that needs one.
SettingsDep = Annotated[ClvSettings, Depends(runtime_settings)]
