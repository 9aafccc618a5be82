"""The malformed-event matrix both doors are tested with: (name, event, what the reason must mention)."""

from tests.services.interaction.events import event, feedback, identified, order, touch

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
    ("oversize", event("customer.identified", "M-1", {"padding": "x" * 300_000}), "byte limit"),
]
