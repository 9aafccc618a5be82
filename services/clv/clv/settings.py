from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

SCHEMA = "clv"


class ClvSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLV_", extra="ignore")

    service_name: str = "clv"
