"""Erasure (R8): the customer's PII leaves every row and payload the interaction service keeps.

Two passes over what stays (the anonymous facts: purchases, the timeline, deals, events still to publish):

1. By shape: every free-text field of a stored event or fact is replaced by a token (see
   `shared.contracts.redaction`): order and deal ids, reasons, owners, summaries, campaigns, fields no
   contract knows. Equal values get equal tokens within one erasure, so an order stays one order.
2. By value: the service knows the customer's PII (identifiers, attribute values) before deleting it, and
   removes every occurrence of it from the strings that pass 1 keeps (a channel, a stage, an event id),
   with phone numbers matched however they are written (E.164, spaced, with 00, national).

Then the identifiers and attributes themselves are deleted, and the outbox rows about the customer are
forgotten: sent ones deleted, unsent ones redacted (`shared.messaging.outbox.forget_subjects`).
"""

import re
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.partner import PARTNER_EVENT_TYPES
from shared.contracts.redaction import Tokenizer, redact_event_data, redact_partner_data, tokenizer
from shared.messaging.outbox import forget_subjects

from interaction.customers import repository
from interaction.tables import messaging

ERASED = "[erased]"
MIN_LENGTH = 3  # shorter values ("de", "1") are not personal on their own and would shred unrelated text
_SEPARATORS = r"[\s().\-/]*"
# A UUID is generated, never personal: a short identifier such as "E-1" can still occur in its text by chance
# ("41b5331e-1bd0-…"), and scrubbing it there would corrupt an id every consumer parses.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class Scrubber:
    """Removes every occurrence of the customer's PII values from strings (case-insensitive)."""

    def __init__(self, values: Iterable[str], phones: Iterable[str] = ()) -> None:
        alternatives = {re.escape(v) for v in values if len(v) >= MIN_LENGTH}
        for e164 in phones:
            alternatives.update(phone_patterns(e164))
        self.pattern = re.compile("|".join(sorted(alternatives, key=len, reverse=True)), re.IGNORECASE) if alternatives else None

    def text(self, value: str | None) -> str | None:
        if value is None or self.pattern is None or _UUID.fullmatch(value):
            return value
        return self.pattern.sub(ERASED, value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.json(v) for k, v in value.items()}
        return value


def phone_patterns(e164: str) -> list[str]:
    """The ways a number is written: +44 20 7946 0958, 0044..., 442079460958, (020) 7946-0958."""
    digits = e164.lstrip("+")
    patterns = [r"\(?(?:\+|00)?" + _SEPARATORS.join(digits)]
    try:
        national = str(phonenumbers.parse(e164, None).national_number)
    except phonenumbers.NumberParseException:
        national = None
    if national and len(national) >= 6:
        patterns.append(r"\(?0?" + _SEPARATORS.join(national))
    return patterns


async def erase(session: AsyncSession, live_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Erase the PII of these live customers and of the customers merged into them; every id erased."""
    all_ids = await repository.folded_ids(session, live_ids)
    identifiers, attributes = await repository.pii_of(session, all_ids)
    phones = [i.external_id for i in identifiers if i.kind == "phone"]
    values = [i.external_id for i in identifiers] + [v for v in _strings(attributes)]
    scrub, token = Scrubber(values, phones), tokenizer()
    await _redact_facts(session, all_ids, scrub, token)
    await repository.delete_pii(session, all_ids)
    await forget_subjects(
        session,
        messaging,
        [str(i) for i in all_ids],
        lambda event_type, data: scrub.json(redact_event_data(event_type, data, token)),
    )
    return all_ids


async def _redact_facts(session: AsyncSession, ids: list[uuid.UUID], scrub: Scrubber, token: Tokenizer) -> None:
    rows = await repository.activity_of(session, ids)
    await repository.update_activity(
        session,
        [
            {
                "id": r.id,
                "event_id": scrub.text(r.event_id),
                "channel": scrub.text(r.channel),
                # A custom type's data is its registered schema's: nothing says which fields are personal, so it goes.
                "data": orjson.dumps(
                    scrub.json(redact_partner_data(r.type, r.data, token)) if r.type in PARTNER_EVENT_TYPES else {}
                ).decode(),
            }
            for r in rows
        ],
    )
    rows = await repository.purchases_of(session, ids)
    await repository.update_purchases(
        session,
        [
            {
                "id": r.id,
                "order_id": token(r.order_id),
                "event_id": scrub.text(r.event_id),
                "channel": scrub.text(r.channel),
                "line_items": None
                if r.line_items is None
                else orjson.dumps(
                    scrub.json(redact_partner_data("order.completed", {"line_items": r.line_items}, token)["line_items"])
                ).decode(),
            }
            for r in rows
        ],
    )
    rows = await repository.adjustments_of(session, ids)
    await repository.update_adjustments(
        session, [{"id": r.id, "order_id": token(r.order_id), "event_id": scrub.text(r.event_id)} for r in rows]
    )
    rows = await repository.deals_of(session, ids)
    await repository.update_deals(
        session,
        [
            {
                "source": r.source,
                "old_id": r.deal_id,
                "deal_id": token(r.deal_id),
                "pipeline": scrub.text(r.pipeline),
                "stage": scrub.text(r.stage),
            }
            for r in rows
        ],
    )
    rows = await repository.channels_of(session, ids)
    await repository.update_channels(session, [scrubbed_channels(scrub, r) for r in rows])


def _strings(values: Iterable[Any]) -> Iterable[str]:
    """Every string (and number written as one) inside attribute values."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and len(str(value)) >= 6:
            yield str(value)  # a phone or id stored as a number; short numbers (an age) would shred amounts
        elif isinstance(value, list):
            yield from _strings(value)
        elif isinstance(value, dict):
            yield from _strings(value.values())


def scrubbed_channels(scrub: Scrubber, row: Any) -> dict:
    """The customer's channel traits with its PII taken out of the channel names: what recomputing them from the
    scrubbed rows gives. Two channels that scrub to one name are one channel: their uses add up, the latest wins,
    and the preferred channel is chosen again (most uses, then latest use, then name). Times keep the text
    Postgres wrote."""
    uses: dict[str, tuple[int, tuple[datetime, str]]] = {}  # name → (uses, latest use as (time, text))
    for channel, use in (row.channel_use or {}).items():
        name, at = scrub.text(channel) or "", (datetime.fromisoformat(use["at"]), use["at"])
        n, latest = uses.get(name, (0, at))
        uses[name] = (n + use["n"], max(latest, at))
    touchpoints: dict[str, tuple[datetime, str]] = {}
    for channel, text in (row.last_touchpoints or {}).items():
        name, at = scrub.text(channel) or "", (datetime.fromisoformat(text), text)
        touchpoints[name] = max(touchpoints.get(name, at), at)
    preferred = (
        min(uses, key=lambda c: (-uses[c][0], -uses[c][1][0].timestamp(), c.encode()))
        if uses
        else scrub.text(row.preferred_channel)
    )
    return {
        "id": row.id,
        "preferred_channel": preferred,
        "channel_use": orjson.dumps({c: {"n": n, "at": at[1]} for c, (n, at) in uses.items()}).decode(),
        "last_touchpoints": orjson.dumps({c: at[1] for c, at in touchpoints.items()}).decode(),
    }
