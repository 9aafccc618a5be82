"""Redaction of an erased customer's events: free text out, the event still valid against its contract."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from shared.contracts import interaction as i
from shared.contracts import lifecycle as lc
from shared.contracts.envelope import Envelope
from shared.contracts.redaction import DOMAIN_EVENT_TYPES, redact_event_data, redact_partner_data, tokenizer

EMAIL = "ada@example.com"
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _data(payload) -> dict:
    return Envelope.wrap(payload, source="/x", subject="s").data


def test_domain_events_lose_free_text_and_still_validate():
    cid = uuid.uuid4()
    payloads = [
        i.PurchaseRecorded(
            customer_id=cid,
            purchase_id=uuid.uuid4(),
            source="shop",
            order_id=f"O-{EMAIL}",
            amount=Decimal("9.90"),
            currency="EUR",
            channel="web",
            occurred_at=NOW,
        ),
        i.DealUpdated(
            customer_id=cid,
            source="crm",
            deal_id=f"D-{EMAIL}",
            pipeline="sales",
            stage="won",
            owner=EMAIL,
            lost_reason=EMAIL,
            occurred_at=NOW,
        ),
        i.LeadCaptured(customer_id=cid, source="crm", campaign=EMAIL, lead_source=EMAIL, occurred_at=NOW),
        i.CustomerMerged(
            customer_id=cid,
            merge_id=uuid.uuid4(),
            survivor_id=cid,
            merged_id=uuid.uuid4(),
            reason=f"email {EMAIL} shared",
            merged_at=NOW,
        ),
        i.CustomerUpdated(customer_id=cid, source="shop", attributes={"nick": EMAIL}, updated_at=NOW),
        lc.StageChanged(
            customer_id=cid,
            from_stage=None,
            to_stage=lc.Stage.CHURNED,
            changed_at=NOW,
            reason=f"asked by {EMAIL}",
            trigger_event_id=EMAIL,
        ),
    ]
    token = tokenizer()
    for payload in payloads:
        redacted = redact_event_data(payload.EVENT_TYPE, _data(payload), token)
        assert EMAIL not in str(redacted), redacted
        model = DOMAIN_EVENT_TYPES[payload.EVENT_TYPE]
        again = model.model_validate(redacted)  # consumers still accept it
        assert again.customer_id == cid
    purchase = redact_event_data("purchase.recorded", _data(payloads[0]), token)
    assert purchase["amount"] == "9.90" and purchase["currency"] == "EUR" and purchase["channel"] == "web"
    deal = redact_event_data("deal.updated", _data(payloads[1]), token)
    assert deal["stage"] == "won" and "owner" not in deal and deal["deal_id"].startswith("erased:")


def test_equal_values_get_equal_tokens_within_one_erasure_only():
    first, second = tokenizer(), tokenizer()
    assert first("O-1") == first("O-1") != first("O-2")
    assert first("O-1") != second("O-1"), "a token cannot be recognised across erasures"
    assert first(first("O-1")) == first("O-1"), "redacting twice changes nothing"


def test_partner_data_keeps_facts_and_drops_unknown_fields():
    token = tokenizer()
    data = {
        "order_id": EMAIL,
        "amount": "5.00",
        "currency": "EUR",
        "channel": "web",
        "note": EMAIL,
        "line_items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "2.50"}],
    }
    redacted = redact_partner_data("order.completed", data, token)
    assert redacted["order_id"] == token(EMAIL) and "note" not in redacted
    assert redacted["line_items"][0]["quantity"] == 2 and redacted["amount"] == "5.00"
    logged = redact_partner_data("interaction.logged", {"channel": "phone", "summary": EMAIL, "outcome": EMAIL}, token)
    assert logged == {"channel": "phone"}
    unknown = redact_partner_data("no.such.type", {"x": EMAIL, "currency": "EUR", "n": 3}, token)
    assert unknown == {"x": token(EMAIL), "currency": "EUR", "n": 3}
