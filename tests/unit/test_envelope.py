import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from shared.contracts.envelope import MAX_EVENT_BYTES, Envelope, EnvelopeTemplate, InvalidEvent
from shared.contracts.partner import OrderCompleted


def test_structured_round_trip_keeps_every_attribute():
    order = OrderCompleted(order_id="A-1", amount=Decimal("9.99"), currency="EUR")
    event = Envelope.wrap(order, source="shop", subject="C-1", correlation_id="cid")
    back = Envelope.from_json(event.to_json())
    assert back == event
    assert back.dataschema == "urn:crm:schema:order.completed:v1"
    assert back.payload(OrderCompleted) == order


def test_binary_binding_reads_ce_headers_and_data_from_the_value():
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e1"),
        ("ce_source", b"shop"),
        ("ce_type", b"order.completed"),
        ("ce_subject", b"C-1"),
        ("ce_time", b"2026-11-01T10:00:00Z"),
        ("content-type", b"application/json"),
    ]
    event = Envelope.from_kafka(orjson.dumps({"order_id": "A-1", "amount": "1", "currency": "EUR"}), headers)
    assert (event.id, event.source, event.subject) == ("e1", "shop", "C-1")
    assert event.payload(OrderCompleted).order_id == "A-1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"specversion":"1.0","id":"x","source":"s","type":"t"}', "time"),
        (b'{"specversion":"0.3","id":"x","source":"s","type":"t","time":"2026-01-01T00:00:00Z"}', "specversion"),
        (b'{"specversion":"1.0","id":"x","source":"s","type":"t","time":"2026-01-01T00:00:00"}', "time"),
        (b'{"specversion":"1.0","id":"","source":"s","type":"t","time":"2026-01-01T00:00:00Z"}', "id"),
    ],
)
def test_malformed_events_raise_invalid_event_with_the_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        Envelope.from_json(raw)


def test_oversize_event_is_rejected_before_parsing():
    with pytest.raises(InvalidEvent, match="byte limit"):
        Envelope.from_json(b" " * (MAX_EVENT_BYTES + 1))


def test_unknown_fields_are_kept_on_the_envelope_and_ignored_by_payloads():
    doc = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "s",
        "type": "order.completed",
        "time": "2026-01-01T00:00:00Z",
        "partnerext": "x",
        "data": {"order_id": "A", "amount": "1", "currency": "EUR", "future_field": 1},
    }
    event = Envelope.from_dict(doc)
    assert event.model_extra == {"partnerext": "x"}
    assert event.payload(OrderCompleted).order_id == "A"


AT = datetime(2026, 12, 5, 12, 30, tzinfo=UTC)


def _order_event(ids, note='tab\t "quote" \\ ünïcode 😀 \u2028'):
    order = OrderCompleted(order_id=ids["order"], amount=Decimal("9.99"), currency="EUR", channel=note)
    return Envelope.wrap(order, source="shop", subject=ids["customer"], time=AT, correlation_id="cid", event_id=ids["event"])


def test_a_filled_template_is_byte_for_byte_the_envelopes_json():
    template = EnvelopeTemplate.of(_order_event, ["event", "customer", "order"])
    assert sorted(template.holes) == ["customer", "event", "order"] and len(template.parts) == 4
    for _ in range(20):
        ids = {name: str(uuid.uuid4()) for name in ("event", "customer", "order")}
        assert template.fill(ids) == _order_event(ids).to_json()


def test_a_template_refuses_unused_holes_and_ids_of_another_length():
    with pytest.raises(ValueError, match="order"):
        EnvelopeTemplate.of(lambda ids: _order_event({**ids, "order": "A-1"}), ["event", "customer", "order"])
    template = EnvelopeTemplate.of(_order_event, ["event", "customer", "order"])
    with pytest.raises(ValueError, match="36 characters"):
        template.fill({"event": "e1", "customer": str(uuid.uuid4()), "order": str(uuid.uuid4())})


def test_a_number_hole_takes_an_integers_digits_and_nothing_else():
    def versioned(ids):
        order = OrderCompleted(order_id="A-1", amount=Decimal("9.99"), currency="EUR", channel="web")
        event = Envelope.wrap(order, source="shop", subject=ids["customer"], time=AT, event_id=ids["event"])
        return event.model_copy(update={"data": {**event.data, "version": int(ids["version"])}})

    template = EnvelopeTemplate.of(versioned, ["event", "customer", "version"], numbers=["version"])
    for version in ("1", "42", str(2**63 - 1)):
        ids = {"event": str(uuid.uuid4()), "customer": str(uuid.uuid4()), "version": version}
        assert template.fill(ids) == versioned(ids).to_json()
        assert Envelope.from_json(template.fill(ids)).data["version"] == int(version)
    for hostile in ("", "1e3", "-1", '1,"x":2', "12345678901234567890", "١٢"):  # "١٢": Arabic-Indic digits
        with pytest.raises(ValueError, match="digits"):
            template.fill({"event": str(uuid.uuid4()), "customer": str(uuid.uuid4()), "version": hostile})


def test_a_templates_sql_concatenates_parts_and_holes_in_order():
    template = EnvelopeTemplate.of(_order_event, ["event", "customer", "order"])
    sql = template.sql(["p0", "p1", "p2", "p3"], {"event": "e.id", "customer": "e.customer", "order": "e.order"})
    expected = ["p0"]
    for i, name in enumerate(template.holes, start=1):
        expected += [{"event": "e.id", "customer": "e.customer", "order": "e.order"}[name], f"p{i}"]
    assert sql == " || ".join(expected)
    with pytest.raises(ValueError, match="4 parts"):
        template.sql(["p0"], {})
