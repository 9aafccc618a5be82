from typing import Annotated

from fastapi import Depends
from pydantic_settings import SettingsConfigDict

from shared.service import runtime_settings
from shared.settings import ServiceSettings

SCHEMA = "lifecycle"


class LifecycleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore")

    service_name: str = "lifecycle"
    # How often the clock rules (inactivity churn) are applied as of now; 0 turns the periodic sweep off.
    sweep_interval_s: float = 3600.0
    # Where `reconcile` reads the owners' published state (their state routes; docs/<service>.md, Consistency).
    clv_url: str = "http://127.0.0.1:8003"
    # A replay run holds a lease this long, renewed while it runs: a run whose replica died is resumed by
    # another once the lease lapsed (see shared/jobs.py).
    job_lease_s: float = 30.0


# The running service's settings, for an endpoint that needs one.
SettingsDep = Annotated[LifecycleSettings, Depends(runtime_settings)]
