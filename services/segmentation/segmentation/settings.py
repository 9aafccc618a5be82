from typing import Annotated

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.service import runtime_settings
from shared.settings import CommaList, ServiceSettings

SCHEMA = "segmentation"


class SegmentationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")

    service_name: str = "segmentation"
    # Money is never summed across currencies: runs and rule `spend` count this one unless told otherwise.
    reporting_currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    # Scheduled runs (rfm, clustering, tiers, then a full rule refresh) every this many seconds; 0 = off.
    schedule_interval_s: float = 0
    schedule_kinds: CommaList = ["rfm", "clustering", "tiers"]
    # Where `reconcile` reads the owners' published state (their state routes; docs/<service>.md, Consistency).
    interaction_url: str = "http://127.0.0.1:8001"
    lifecycle_url: str = "http://127.0.0.1:8004"
    clv_url: str = "http://127.0.0.1:8003"
    # A run holds a lease this long, renewed while it runs: a run whose replica died fails as "interrupted"
    # once the lease lapsed (see shared/jobs.py).
    job_lease_s: float = Field(30.0, ge=1, le=3600)


# The running service's settings, for an endpoint that needs one.
SettingsDep = Annotated[SegmentationSettings, Depends(runtime_settings)]
