from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

SCHEMA = "segmentation"


class SegmentationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTATION_", extra="ignore")

    service_name: str = "segmentation"
