"""Settings common to every service.

Each service subclasses `ServiceSettings` with its own env prefix (`INTERACTION_`, `CLV_`, …). A prefixed
variable wins; the unprefixed one (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`) is the fallback, so one
environment can point every service at the same servers while ops can still split them per service.

One form per kind: a duration is in seconds and its name ends in `_s` (`job_lease_s`); a list is a
comma-separated string in the environment (`CommaList`). A setting renamed to follow them keeps its former
variable working, converted, with a warning (`renamed_env`).
"""

import json
import logging
import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)


def _split_commas(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):  # the JSON list a list setting took before: still read
        return json.loads(value)
    return [v.strip() for v in value.split(",") if v.strip()]


# A list setting: `A,B,C` in the environment (blanks around items ignored), a list or the same string in code.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/crm"
    db_pool_size: int = 20  # connections at most, opened as needed and kept (shared/db.make_engine)
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

    # Former names of renamed settings (without the prefix) -> (the setting now, factor to its unit): the former
    # variable is still read, converted, when the new one is not set.
    renamed_env: ClassVar[dict[str, tuple[str, float]]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _RenamedEnv(settings_cls),
            _UnprefixedEnv(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


class _RenamedEnv(PydanticBaseSettingsSource):
    """The variables of settings renamed since (`renamed_env`), converted to the new setting's unit."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the environment itself

    def __call__(self) -> dict[str, Any]:
        renamed: dict[str, tuple[str, float]] = getattr(self.settings_cls, "renamed_env", {})
        prefix = str(self.config.get("env_prefix", "")).upper()
        environ = {k.upper(): v for k, v in os.environ.items()}
        found: dict[str, Any] = {}
        for old, (new, factor) in renamed.items():
            if (value := environ.get(prefix + old.upper())) is not None:
                log.warning("%s%s is deprecated: set %s%s (seconds) instead", prefix, old.upper(), prefix, new.upper())
                found[new] = float(value) * factor
        return found


class _UnprefixedEnv(EnvSettingsSource):
    """Reads only the settings that one environment may set for all services at once."""

    SHARED = {
        "database_url",
        "kafka_bootstrap_servers",
        "topic_prefix",
        "transport",
        "log_level",
        "log_json",
        "internal_token_public_key",
        "internal_token_private_key",
    }

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="")

    def __call__(self) -> dict:
        return {k: v for k, v in super().__call__().items() if k in self.SHARED}
