"""Partner event validation beyond the JSON schema: subject, plausible timestamps, identifiers, attribute types.

Both doors use it: HTTP rejects the item with the reason, Kafka dead-letters the event with the reason.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from shared.contracts.envelope import Envelope, InvalidEvent, Payload, describe_validation_error
from shared.contracts.formats import NOT_BLANK, NUMBER_BOUND
from shared.contracts.partner import PARTNER_EVENT_TYPES, CustomEvent, PartnerPayload, occurred
from shared.validation import describe, find_unstorable, text_problem

from interaction.event_types.service import Catalogue
from interaction.identity.normalise import EMAIL, PHONE, IdentifierKey, normalise_email, normalise_phone, source_key

# Plausible window for when a fact happened: from 1990 (historical imports) to one day ahead (clock skew).
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)
# Dates that may lie in the future (a deal's expected close): up to this far ahead.
FUTURE_PLAN = timedelta(days=3650)
_SUBJECT = re.compile(NOT_BLANK)  # the AsyncAPI document's pattern for `subject`
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(slots=True)
class PartnerEvent:
    envelope: Envelope
    payload: Payload
    occurred_at: datetime = None  # type: ignore[assignment]
    # The subject's key first, then the payload's identifiers (normalised).
    keys: list[IdentifierKey] = field(default_factory=list)
    attributes: dict[str, tuple[object, str]] = field(default_factory=dict)  # key -> (value, value type)
    schema_version: int | None = None  # of a custom event: the registered version its data satisfies


def validate(raw: object, custom: Catalogue | None = None) -> PartnerEvent:
    """A raw JSON item as a checked partner event, or `InvalidEvent` saying what is wrong. `custom`: the
    registered custom types the batch names (None: the batch names none)."""
    envelope = Envelope.from_dict(raw)
    model = PARTNER_EVENT_TYPES.get(envelope.type)
    if model is None:
        if custom is None or envelope.type not in custom:
            raise unknown_type(envelope.type, custom)
        model = CustomEvent
    if not envelope.subject:
        raise InvalidEvent("subject: the partner's customer id is required")
    try:
        payload = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidEvent(f"data: {describe_validation_error(exc)}") from None
    event = check(envelope, payload)
    if custom is not None and model is CustomEvent:
        event.schema_version = custom.check(envelope)
    return event


def unknown_type(event_type: str, custom: Catalogue | None) -> InvalidEvent:
    known = sorted(PARTNER_EVENT_TYPES) + (custom.names if custom is not None else [])
    return InvalidEvent(f"unknown event type {event_type[:200]!r}; known: {', '.join(known)}")


def custom_type_names(items: list[object]) -> set[str]:
    """The types of these raw items that are not fixed ones: the custom types a batch may name."""
    return {
        i["type"]
        for i in items
        if isinstance(i, dict)
        and isinstance(i.get("type"), str)
        and i["type"] not in PARTNER_EVENT_TYPES
        and len(i["type"]) <= 200
    }


def check(envelope: Envelope, payload: Payload, now: datetime | None = None) -> PartnerEvent:
    """Checks what the schema cannot say and normalises identifiers; raises `InvalidEvent`."""
    if not envelope.subject or not _SUBJECT.search(envelope.subject):
        raise InvalidEvent("subject: the partner's customer id is required (not blank)")
    _check_storable(envelope)
    _check_version(envelope, payload)
    now = now or datetime.now(UTC)
    _check_time("time", envelope.time, now + FUTURE_SKEW)
    when = occurred(payload, envelope.time)
    _check_time("data.occurred_at", when, now + FUTURE_SKEW)
    # Fields read from the instance dict: getattr on a pydantic model for a field the type lacks raises and
    # catches an AttributeError inside pydantic (~3 µs an event, a tenth of the check's cost).
    fields = vars(payload)
    if (close := fields.get("expected_close")) is not None:
        if close.tzinfo is None:
            raise InvalidEvent("data.expected_close: needs a UTC offset")
        _check_time("data.expected_close", close, now + FUTURE_PLAN)
    event = PartnerEvent(envelope, payload, when.astimezone(UTC), [source_key(envelope.source, envelope.subject)])
    ids = payload.identifiers if isinstance(payload, PartnerPayload) else None
    if ids is not None:
        if ids.email:
            event.keys.append((EMAIL, "", normalise_email(ids.email)))
        if ids.phone:
            event.keys.append((PHONE, "", normalise_phone(ids.phone)))
        for source, external_id in ids.external_ids.items():
            if not source or not external_id or len(source) > 200 or len(external_id) > 200:
                raise InvalidEvent("identifiers.external_ids: source and id must be 1–200 characters")
            if source != envelope.source:
                # Another partner's ids would let this partner attach facts to, or merge, that partner's customers.
                raise InvalidEvent(
                    f"identifiers.external_ids: {source[:80]!r} is not your source; a partner may "
                    f"only name its own ids (under {envelope.source[:80]!r})"
                )
            event.keys.append(source_key(source, external_id))
        event.keys = list(dict.fromkeys(event.keys))
    for key, value in (fields.get("attributes") or {}).items():
        event.attributes[key] = (value, attribute_type(key, value))
    return event


def _check_storable(envelope: Envelope) -> None:
    """What Postgres and the JSON encoders cannot take (NUL, lone surrogates, inf, huge integers, deep nesting):
    the one bad event is rejected instead of failing the transaction of its whole batch."""
    for name in ("id", "source", "subject", "datacontenttype", "correlationid", "dataschema"):
        value = getattr(envelope, name)
        if value is not None and (problem := text_problem(value)):
            raise InvalidEvent(f"{name}: {problem}")
    if found := find_unstorable(envelope.data):
        raise InvalidEvent(describe(("data", *found[0]), found[1]))


def _check_version(envelope: Envelope, payload: Payload) -> None:
    """A `dataschema` must name a version this service reads (absent: the current one). Each type has one version
    today; a v2 would be listed here beside v1 while partners move over. Custom types have versions of their own,
    which their catalogue checks (`Catalogue.check`)."""
    if isinstance(payload, CustomEvent):
        return
    known = type(payload).dataschema()
    if envelope.dataschema is not None and envelope.dataschema != known:
        raise InvalidEvent(
            f"dataschema: {envelope.dataschema[:200]!r} is not a known version of {envelope.type!r}; known: {known}"
        )


def _check_time(name: str, value: datetime, latest: datetime) -> None:
    try:
        # Comparing converts to UTC, which overflows for e.g. 9999-12-31T23:59:59-14:00 (year 10000 in UTC).
        inside = EARLIEST <= value <= latest
    except OverflowError:
        inside = False
    if not inside:
        raise InvalidEvent(
            f"{name}: {value.isoformat()} is outside the accepted window "
            f"({EARLIEST.date()} to {latest.isoformat(timespec='seconds')})"
        )


def attribute_type(key: str, value: object) -> str:
    if len(key) > 100 or not key:
        raise InvalidEvent(f"data.attributes: key {key[:40]!r} must be 1–100 characters")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        if not -NUMBER_BOUND <= value <= NUMBER_BOUND:
            raise InvalidEvent(f"data.attributes.{key}: must be within ±{NUMBER_BOUND:.1e}")
        return "number"
    if isinstance(value, str):
        if len(value) > 2000:
            raise InvalidEvent(f"data.attributes.{key}: longer than 2000 characters")
        return "date" if _DATE.match(value) else "string"
    raise InvalidEvent(f"data.attributes.{key}: must be a string, number, boolean or date, got {type(value).__name__}")
