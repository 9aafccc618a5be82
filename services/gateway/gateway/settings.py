from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    interaction_url: str = "http://127.0.0.1:8001"
    segmentation_url: str = "http://127.0.0.1:8002"
    clv_url: str = "http://127.0.0.1:8003"
    lifecycle_url: str = "http://127.0.0.1:8004"
    # Upstream calls: connecting fails fast (a down service answers 503 at once), reading may take longer.
    connect_timeout_s: float = 1.0
    request_timeout_s: float = 10.0
    max_connections: int = 200
    log_level: str = "INFO"
    log_json: bool = True

    def service_urls(self) -> dict[str, str]:
        return {
            "interaction": self.interaction_url,
            "segmentation": self.segmentation_url,
            "clv": self.clv_url,
            "lifecycle": self.lifecycle_url,
        }
