from typing import Annotated

from fastapi import Depends
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.service import runtime_settings
from shared.settings import ServiceSettings

SCHEMA = "interaction"


class InteractionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTERACTION_", extra="ignore")

    service_name: str = "interaction"
    # Upper bounds for `POST /v1/events`, documented in the OpenAPI description.
    ingest_max_events: int = 1000
    ingest_max_bytes: int = 5 * 1024 * 1024
    # Group commit of `POST /v1/events`: requests arriving while one transaction commits (or within
    # `ingest_group_max_wait_ms` of the first waiting one) share the next, up to `ingest_group_max_events`
    # events; off, each request has its own transaction.
    ingest_group_commit: bool = True
    ingest_group_max_wait_ms: float = Field(2.0, ge=0, le=1000)
    ingest_group_max_events: int = Field(1000, ge=1, le=100_000)


# The running service's settings, for an endpoint that needs one.
SettingsDep = Annotated[InteractionSettings, Depends(runtime_settings)]
