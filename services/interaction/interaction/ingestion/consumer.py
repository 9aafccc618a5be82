"""The Kafka door: partner events published to `partner.events.<partner>` (or, by the platform's own producers,
`partner.events`), applied through the inbox.

A partner's topic is writable only by its SASL principal (ACLs, docs/security.md), so the topic names the
partner that wrote it: an event whose `source` is not that partner is dead-lettered to the partner's own DLQ
(`partner.events.<partner>.dlq`, readable only by it), as the gateway refuses it over HTTP.

Events that parse but fail the checks the schema cannot express (subject, timestamps, identifiers) are
dead-lettered in the same transaction, through the outbox, so one bad event never sends the batch down the
inbox's slow one-by-one path and is dead-lettered exactly once.
"""

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Envelope, InvalidEvent
from shared.contracts.partner import PARTNER_EVENT_TYPES, CustomEvent
from shared.contracts.topics import PARTNER_EVENTS, PARTNER_TOPICS_PATTERN, partner_of_topic
from shared.messaging.inbox import ConsumedEvent, Subscription, dead_letter_message
from shared.messaging.outbox import Outbox
from shared.messaging.transport import IncomingMessage

from interaction.event_types.service import catalogue
from interaction.ingestion.service import INGEST_INBOX, apply_partner_events
from interaction.ingestion.validation import PartnerEvent, check, unknown_type


def partner_ingest_subscription(outbox: Outbox, timings: dict[str, float] | None = None) -> Subscription:
    async def handle(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        started = time.perf_counter()
        good: list[PartnerEvent] = []
        dead: list[tuple[ConsumedEvent, str]] = []
        now = datetime.now(UTC)  # one clock reading for the batch's plausibility windows
        # Types beyond the fixed ones came parsed as CustomEvent: checked against the registry, read once a batch.
        names = {e.envelope.type for e in events if isinstance(e.payload, CustomEvent)}
        custom = await catalogue(session, names) if names else None
        for e in events:
            try:
                # Headers travel on to the dead-letter topic and the outbox's headers column (jsonb).
                if any(b"\x00" in v for _, v in e.message.headers):
                    raise InvalidEvent("a header contains a NUL character (\\u0000)")
                event = check(e.envelope, e.payload, now)
                if isinstance(e.payload, CustomEvent):
                    if custom is None or e.envelope.type not in custom:
                        raise unknown_type(e.envelope.type, custom)
                    event.schema_version = custom.check(e.envelope)
                good.append(event)
            except InvalidEvent as exc:
                dead.append((e, str(exc)))
        if timings is not None:
            timings["check"] = timings.get("check", 0.0) + time.perf_counter() - started
        if dead:
            await dead_letter(session, outbox, dead)
        await apply_partner_events(session, outbox, good, timings)

    def admit(message: IncomingMessage, envelope: Envelope) -> None:
        partner = partner_of_topic(message.topic.removeprefix(outbox.topic_prefix))
        if partner is not None and envelope.source != partner:
            raise InvalidEvent(
                f"source {envelope.source[:200]!r} is not yours: events on {message.topic!r} must have source {partner!r}"
            )

    name = INGEST_INBOX.removeprefix("interaction.")
    return Subscription(
        name=name,
        topics=[PARTNER_EVENTS],
        event_types=PARTNER_EVENT_TYPES,
        handler=handle,
        reject_unknown_types=True,
        unknown_types_as=CustomEvent,
        topic_pattern=PARTNER_TOPICS_PATTERN,
        admit=admit,
    )


async def dead_letter(session: AsyncSession, outbox: Outbox, dead: list[tuple[ConsumedEvent, str]]) -> None:
    """The inbox's dead letter (`dead_letter_message`), sent through the outbox: in the batch's transaction."""
    group = outbox.topic_prefix + INGEST_INBOX
    rows = []
    for event, reason in dead:
        letter = dead_letter_message(event.message, reason, group, attempts=1)
        rows.append(
            {
                "event_id": event.envelope.id,
                "topic": letter.topic,
                "key": letter.key.decode("utf-8", "replace") if letter.key else None,
                "payload": letter.value,
                # The outbox keeps headers as jsonb text.
                "headers": {k: v.decode("utf-8", "replace") for k, v in letter.headers},
            }
        )
    await session.execute(sa.insert(outbox.table), rows)
    await session.execute(sa.select(sa.func.pg_notify(outbox.channel, "")))
