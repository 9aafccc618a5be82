"""The Kafka door: partner events published to `partner.events`, applied through the inbox."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import InvalidEvent
from shared.contracts.partner import PARTNER_EVENT_TYPES
from shared.contracts.topics import PARTNER_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription
from shared.messaging.outbox import Outbox

from interaction.ingestion.service import INGEST_INBOX, PartnerEvent, apply_partner_events


def partner_ingest_subscription(outbox: Outbox) -> Subscription:
    async def handle(session: AsyncSession, events: list[ConsumedEvent]) -> None:
        for e in events:
            if not e.envelope.subject:
                raise InvalidEvent("subject: the partner's customer id is required")
        await apply_partner_events(session, outbox, [PartnerEvent(e.envelope, e.payload) for e in events])

    name = INGEST_INBOX.removeprefix("interaction.")
    return Subscription(name=name, topics=[PARTNER_EVENTS], event_types=PARTNER_EVENT_TYPES, handler=handle,
                        reject_unknown_types=True)
