"""Settings: one form per kind (durations in seconds, lists comma-separated), renamed variables still read."""

import logging

import pytest

from clv.settings import ClvSettings
from gateway.settings import GatewaySettings
from interaction.settings import InteractionSettings
from segmentation.settings import SegmentationSettings


def test_a_list_is_comma_separated_in_the_environment(monkeypatch):
    monkeypatch.setenv("GATEWAY_WEBHOOK_ALLOWED_HOSTS", " 127.0.0.1, receiver.local ,,10.0.0.0/8")
    monkeypatch.setenv("SEGMENTATION_SCHEDULE_KINDS", "rfm,tiers")
    assert GatewaySettings().webhook_allowed_hosts == ["127.0.0.1", "receiver.local", "10.0.0.0/8"]
    assert SegmentationSettings().schedule_kinds == ["rfm", "tiers"]
    assert GatewaySettings(cors_origins="https://a.example").cors_origins == ["https://a.example"]
    assert GatewaySettings().cors_origins == [] and GatewaySettings().jwt_algorithms == ["RS256", "ES256"]


def test_the_json_list_a_list_setting_took_before_is_still_read(monkeypatch):
    monkeypatch.setenv("SEGMENTATION_SCHEDULE_KINDS", '["rfm", "clustering"]')
    assert SegmentationSettings().schedule_kinds == ["rfm", "clustering"]


@pytest.mark.parametrize(
    ("settings", "old", "value", "field", "seconds"),
    [
        (ClvSettings, "CLV_REFIT_INTERVAL_HOURS", "2", "refit_interval_s", 7200.0),
        (InteractionSettings, "INTERACTION_INGEST_GROUP_MAX_WAIT_MS", "5", "ingest_group_max_wait_s", 0.005),
    ],
)
def test_a_renamed_duration_still_reads_its_former_variable_converted_to_seconds(
    monkeypatch, caplog, settings, old, value, field, seconds
):
    monkeypatch.setenv(old, value)
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        assert getattr(settings(), field) == pytest.approx(seconds)
    assert f"{old} is deprecated" in caplog.text

    # The new variable wins when both are set.
    monkeypatch.setenv(old.rsplit("_", 1)[0] + "_S", "0.5")
    assert getattr(settings(), field) == 0.5
