"""The malformed-event matrix both doors are tested with: (name, event, what the reason must mention)."""

from tests.services.interaction.events import event, feedback, identified, order, touch


def nested(levels: int) -> object:
    doc: object = "bottom"
    for _ in range(levels):
        doc = {"level": doc}
    return doc


MALFORMED: list[tuple[str, object, str]] = [
    ("not an object", ["an", "array"], "JSON object"),
    ("missing id", {k: v for k, v in order("M-1", "X-1").items() if k != "id"}, "id"),
    ("unknown type", event("order.teleported", "M-1", {}), "unknown event type"),
    ("missing subject", order(None, "X-2"), "subject"),
    ("blank subject", order("  ", "X-3"), "subject"),
    ("amount of wrong type", order("M-1", "X-4", amount="ten"), "amount"),
    ("negative amount", order("M-1", "X-5", amount="-1"), "amount"),
    ("currency not ISO 4217", order("M-1", "X-6", currency="euro"), "currency"),
    ("nps of wrong type", feedback("M-1", nps="high"), "nps"),
    ("nps out of range", feedback("M-1", nps=11), "nps"),
    ("unknown channel", touch("M-1", "telepathy"), "channel"),
    ("nested attribute", identified("M-1", attributes={"address": {"city": "Paris"}}), "attributes.address"),
    ("time in year 9999", order("M-1", "X-7", time="9999-12-31T00:00:00Z"), "outside the accepted window"),
    ("time before 1970", order("M-1", "X-8", time="1969-07-20T20:17:00Z"), "outside the accepted window"),
    ("occurred_at in year 9999", order("M-1", "X-9", at="9999-01-01T00:00:00Z"), "occurred_at"),
    ("time without offset", order("M-1", "X-10", time="2026-11-01T10:00:00"), "time"),
    ("bad email", identified("M-1", email="not-an-email"), "identifiers.email"),
    ("bad phone", identified("M-1", phone="12"), "identifiers.phone"),
    ("NUL character", identified("M-1", attributes={"note": "a\x00b"}), "NUL"),
    ("data nested 100 levels", event("customer.identified", "M-1", {"note": nested(100)}), "nested deeper than 32"),
    (
        "expected_close overflowing UTC",
        event("deal.updated", "M-1", {"deal_id": "D-1", "stage": "won", "expected_close": "9999-12-31T23:59:59-14:00"}),
        "expected_close",
    ),
    ("occurred_at before year 1 in UTC", order("M-1", "X-11", at="0001-01-01T00:00:00+14:00"), "occurred_at"),
    ("NUL in the subject", order("M-\x00", "X-12"), "subject"),
    ("oversize", event("customer.identified", "M-1", {"padding": "x" * 300_000}), "byte limit"),
]
