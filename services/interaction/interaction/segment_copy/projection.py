"""Consumes `segmentation.events` into `interaction.segment_membership`, set-based per batch."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.segmentation import SegmentMembershipChanged
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

# Within a batch the newest change per (customer, segment) is kept; across batches the stored row is replaced
# only by a newer change, so redelivery and reordering end in the same state.
APPLY = sa.text("""
INSERT INTO interaction.segment_membership AS m (customer_id, segment_key, segment_name, member, changed_at)
SELECT DISTINCT ON (customer_id, segment_key) customer_id, segment_key, segment_name, member, changed_at
FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:keys AS text[]), CAST(:names AS text[]),
            CAST(:members AS boolean[]), CAST(:at AS timestamptz[]))
     AS b(customer_id, segment_key, segment_name, member, changed_at)
ORDER BY customer_id, segment_key, changed_at DESC, member
ON CONFLICT (customer_id, segment_key) DO UPDATE SET segment_name = EXCLUDED.segment_name,
    member = EXCLUDED.member, changed_at = EXCLUDED.changed_at, updated_at = now()
WHERE EXCLUDED.changed_at > m.changed_at
""")


async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    payloads = [e.payload for e in events if isinstance(e.payload, SegmentMembershipChanged)]
    if payloads:
        await session.execute(
            APPLY,
            {
                "customer_ids": [p.customer_id for p in payloads],
                "keys": [p.segment_key for p in payloads],
                "names": [p.segment_name for p in payloads],
                "members": [p.change == "entered" for p in payloads],
                "at": [p.changed_at for p in payloads],
            },
        )


def segment_copy_subscription() -> Subscription:
    # Idempotent (docs/development.md, "Idempotent handlers"): a change applied again is no newer than the row it
    # left, so the row stays. Its events are not claimed in the inbox: a segmentation run publishes a change for
    # every customer whose membership it moves (a run over a million customers, up to a million), each of which
    # was a claim row, its index entry and its WAL here.
    return Subscription(
        name="segments",
        topics=[SEGMENTATION_EVENTS],
        handler=apply,
        event_types={SegmentMembershipChanged.EVENT_TYPE: SegmentMembershipChanged},
        idempotent=True,
    )
