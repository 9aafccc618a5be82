"""Settings common to every service.

Each service subclasses `ServiceSettings` with its own env prefix (`INTERACTION_`, `CLV_`, …). A prefixed
variable wins; the unprefixed one (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`) is the fallback, so one
environment can point every service at the same servers while ops can still split them per service.
"""

from typing import Literal

from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/crm"
    db_pool_size: int = 10
    # "kafka" in production and tests; "inprocess" for the embedded single-process mode.
    transport: Literal["kafka", "inprocess"] = "kafka"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prefixed onto every topic name: lets tests share one broker without seeing each other's events.
    topic_prefix: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    # Background work (outbox relay, consumers) can be switched off, e.g. for an API-only replica.
    run_workers: bool = True
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 3
    relay_batch_size: int = 1000
    relay_poll_interval_s: float = 1.0
    # The gateway's Ed25519 public key(s), base64url, comma-separated: every request but health and metrics
    # must carry a token signed with it (see shared/internal_auth.py). Required: a service refuses to start without.
    internal_token_public_key: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _UnprefixedEnv(settings_cls), dotenv_settings, file_secret_settings


class _UnprefixedEnv(EnvSettingsSource):
    """Reads only the settings that one environment may set for all services at once."""

    SHARED = {"database_url", "kafka_bootstrap_servers", "topic_prefix", "transport", "log_level", "log_json",
              "internal_token_public_key", "internal_token_private_key"}

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="")

    def __call__(self) -> dict:
        return {k: v for k, v in super().__call__().items() if k in self.SHARED}
