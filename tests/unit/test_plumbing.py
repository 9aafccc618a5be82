import asyncpg
import pytest
import sqlalchemy as sa
from pydantic_settings import SettingsConfigDict

from shared.messaging.inbox import is_transient
from shared.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")


def test_prefixed_settings_win_over_the_shared_unprefixed_ones(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://shared/crm")
    monkeypatch.setenv("SERVICE_NAME", "not-shared")  # only a few settings may be set for all services
    assert DemoSettings().database_url == "postgresql+asyncpg://shared/crm"
    assert DemoSettings().service_name == "service"
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql+asyncpg://own/crm")
    assert DemoSettings().database_url == "postgresql+asyncpg://own/crm"


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError(), True),
        (asyncpg.CannotConnectNowError("starting up"), True),
        (sa.exc.OperationalError("select 1", {}, Exception("server closed the connection")), True),
        (sa.exc.IntegrityError("insert", {}, Exception("duplicate key")), False),
        (ValueError("bad data"), False),
        (RuntimeError("wrapped"), False),
    ],
)
def test_outages_are_transient_and_data_errors_are_not(exc, transient):
    assert is_transient(exc) is transient


def test_a_data_error_caused_by_an_outage_is_transient():
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as cause:
            raise RuntimeError("while applying") from cause
    except RuntimeError as exc:
        assert is_transient(exc)


def test_fastapi_own_telemetry_is_off_unless_an_operator_asks_for_it(monkeypatch) -> None:
    """With no OpenTelemetry SDK installed it records nothing, but asked three global providers per request."""
    from fastapi import FastAPI
    from opentelemetry import trace

    from shared.http import fastapi_telemetry

    asked = []
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: asked.append(1) or trace.ProxyTracerProvider())
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    assert not FastAPI(telemetry=fastapi_telemetry())._native_telemetry.enabled()
    assert not asked, "no provider is looked up per request"
    assert not FastAPI()._native_telemetry.enabled() and asked  # FastAPI's default looks them up
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    assert fastapi_telemetry() is None
