"""Builders of partner events (CloudEvents JSON, as partners send them) for the interaction tests."""

import uuid


def event(
    type_: str,
    subject: str | None,
    data: dict,
    *,
    source: str = "shop-eu",
    time: str = "2026-11-01T10:00:00Z",
    event_id: str | None = None,
    **overrides,
) -> dict:
    e = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": time,
        "data": data,
    }
    e.update(overrides)
    return e


def identified(
    subject: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    attributes: dict | None = None,
    consent: dict | None = None,
    **kw,
) -> dict:
    ids = {k: v for k, v in {"email": email, "phone": phone}.items() if v}
    return event(
        "customer.identified", subject, {"identifiers": ids, "attributes": attributes or {}, "consent": consent or {}}, **kw
    )


def order(
    subject: str,
    order_id: str,
    amount: str = "10.00",
    *,
    currency: str = "EUR",
    channel: str = "web",
    at: str = "2026-11-01T10:00:00Z",
    email: str | None = None,
    **kw,
) -> dict:
    data = {"order_id": order_id, "amount": amount, "currency": currency, "channel": channel, "occurred_at": at}
    if email:
        data["identifiers"] = {"email": email}
    return event("order.completed", subject, data, **kw)


def refund(subject: str, order_id: str, amount: str | None = None, *, at: str = "2026-11-02T10:00:00Z", **kw) -> dict:
    data = {"order_id": order_id, "occurred_at": at, "reason": "damaged"}
    if amount is not None:
        data["amount"] = amount
    return event("order.refunded", subject, data, **kw)


def cancel(subject: str, order_id: str, *, at: str = "2026-11-02T10:00:00Z", **kw) -> dict:
    return event("order.cancelled", subject, {"order_id": order_id, "occurred_at": at}, **kw)


def touch(subject: str, channel: str, *, at: str = "2026-11-01T10:00:00Z", **kw) -> dict:
    return event(
        "interaction.logged",
        subject,
        {"channel": channel, "direction": "inbound", "outcome": "resolved", "summary": "asked about delivery", "occurred_at": at},
        **kw,
    )


def feedback(subject: str, *, nps: int | None = None, csat: int | None = None, at: str = "2026-11-01T10:00:00Z", **kw) -> dict:
    data = {"occurred_at": at, "comment": "great service", "perceived_value": 7.5, "expected_value": 8}
    if nps is not None:
        data["nps"] = nps
    if csat is not None:
        data["csat"] = csat
    return event("feedback.submitted", subject, data, **kw)
