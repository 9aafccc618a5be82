"""Erasure's channel traits: what recomputing them from the scrubbed rows would give, without reading the rows."""

import uuid
from types import SimpleNamespace

from interaction.customers.erasure import ERASED, Scrubber, scrubbed_channels

EMAIL = "ada.lovelace@example.com"


def test_channels_that_scrub_to_one_name_become_one_channel() -> None:
    row = SimpleNamespace(
        id=uuid.uuid4(),
        preferred_channel="web",
        channel_use={
            "web": {"n": 3, "at": "2026-11-01T10:00:00+00:00"},
            EMAIL: {"n": 2, "at": "2026-11-03T10:00:00.5+00:00"},
            EMAIL.upper(): {"n": 2, "at": "2026-11-02T10:00:00+00:00"},
        },
        last_touchpoints={EMAIL: "2026-11-01T09:00:00+00:00", EMAIL.title(): "2026-11-04T09:00:00+00:00"},
    )
    out = scrubbed_channels(Scrubber([EMAIL]), row)
    # Four uses under one name now pass web's three; the latest use keeps the text Postgres wrote.
    assert out["preferred_channel"] == ERASED
    assert out["channel_use"] == (
        '{"web":{"n":3,"at":"2026-11-01T10:00:00+00:00"},"[erased]":{"n":4,"at":"2026-11-03T10:00:00.5+00:00"}}'
    )
    assert out["last_touchpoints"] == '{"[erased]":"2026-11-04T09:00:00+00:00"}'


def test_a_customer_without_channel_uses_keeps_its_scrubbed_preference() -> None:
    row = SimpleNamespace(id=uuid.uuid4(), preferred_channel=f"call {EMAIL}", channel_use={}, last_touchpoints={})
    out = scrubbed_channels(Scrubber([EMAIL]), row)
    assert out["preferred_channel"] == f"call {ERASED}"
    assert out["channel_use"] == "{}" and out["last_touchpoints"] == "{}"
