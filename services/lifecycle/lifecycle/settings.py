from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

SCHEMA = "lifecycle"


class LifecycleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore")

    service_name: str = "lifecycle"
