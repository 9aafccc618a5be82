from typing import Annotated, ClassVar

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
    # `ingest_group_max_wait_s` of the first waiting one) share the next, up to `ingest_group_max_events`
    # events; off, each request has its own transaction.
    ingest_group_commit: bool = True
    ingest_group_max_wait_s: float = Field(0.002, ge=0, le=1)
    ingest_group_max_events: int = Field(1000, ge=1, le=100_000)
    # An erasure first waits (up to this long) until the Kafka door applied every event acknowledged before it
    # (docs/interaction.md, "Erasure"); past it the erasure answers 503 and erases nothing.
    erasure_ingest_wait_s: float = Field(5.0, ge=0, le=60)

    renamed_env: ClassVar[dict[str, tuple[str, float]]] = {"ingest_group_max_wait_ms": ("ingest_group_max_wait_s", 1e-3)}


# The running service's settings, for an endpoint that needs one.
SettingsDep = Annotated[InteractionSettings, Depends(runtime_settings)]
