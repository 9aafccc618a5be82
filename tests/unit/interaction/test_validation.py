"""Partner event checks without servers: identifier normalisation, attribute types, the timestamp window."""

from datetime import UTC, datetime

import pytest

from shared.contracts.envelope import InvalidEvent
from tests.services.interaction.events import identified, order

from interaction.identity.normalise import normalise_email, normalise_phone
from interaction.ingestion.validation import attribute_type, validate


def test_emails_are_trimmed_and_lower_cased_and_phones_become_e164():
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert normalise_phone("+44 (0)20 7946 0958") == "+442079460958"
    assert normalise_phone("+1 415-555-2671") == "+14155552671"
    for bad in ["", "ada", "ada@", "@example.com", "a b@example.com"]:
        with pytest.raises(InvalidEvent):
            normalise_email(bad)
    for bad in ["020 7946 0958", "12", "phone"]:  # no country code, too short, not a number
        with pytest.raises(InvalidEvent):
            normalise_phone(bad)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("gold", "string"),
        (3, "number"),
        (2.5, "number"),
        (True, "boolean"),
        (None, "null"),
        ("2026-11-30", "date"),
        ("2026-11-30T10:00:00Z", "date"),
        ("2026-11-30 10:00", "date"),
        ("30/11/2026", "string"),
    ],
)
def test_attribute_types(value, kind):
    assert attribute_type("k", value) == kind


def test_an_event_carries_its_subject_key_first_then_normalised_identifiers():
    event = validate(identified("C-1", email=" A@B.io", phone="+33 1 23 45 67 89"))
    assert event.keys == [("source", "shop-eu", "C-1"), ("email", "", "a@b.io"), ("phone", "", "+33123456789")]
    assert event.occurred_at == datetime(2026, 11, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "time", ["1989-12-31T23:59:59Z", "9999-12-31T00:00:00Z", "0001-01-01T00:00:00+05:00", "2999-01-01T00:00:00Z"]
)
def test_times_outside_the_window_are_rejected(time):
    with pytest.raises(InvalidEvent, match="outside the accepted window"):
        validate(order("C-1", "O-1", time=time))


def test_the_window_accepts_old_imports_and_the_present():
    assert validate(order("C-1", "O-1", time="1990-01-01T00:00:00Z", at="1995-06-01T00:00:00+02:00"))
    assert validate(order("C-1", "O-1", time=datetime.now(UTC).isoformat()))
