from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

SCHEMA = "interaction"


class InteractionSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTERACTION_", extra="ignore")

    service_name: str = "interaction"
    # Upper bounds for `POST /v1/events`, documented in the OpenAPI description.
    ingest_max_events: int = 1000
    ingest_max_bytes: int = 5 * 1024 * 1024
