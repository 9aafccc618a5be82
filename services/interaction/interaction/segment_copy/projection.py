"""Consumes `segmentation.events` into `interaction.segment_membership`, set-based per batch."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.ordering import sql_supersedes
from shared.contracts.segmentation import SegmentMembershipChanged, latest_membership_changes
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

# Segmentation's order wins (shared/contracts/ordering.py): a batch is folded to the change that supersedes the
# others per (customer, segment), and the stored row is replaced only by a change with a greater version, so
# redelivery and reordering end in the same state.
APPLY = sa.text(f"""
INSERT INTO interaction.segment_membership AS m (customer_id, segment_key, segment_name, member, changed_at, version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:keys AS text[]), CAST(:names AS text[]),
            CAST(:members AS boolean[]), CAST(:at AS timestamptz[]), CAST(:versions AS bigint[]))
ON CONFLICT (customer_id, segment_key) DO UPDATE SET segment_name = EXCLUDED.segment_name,
    member = EXCLUDED.member, changed_at = EXCLUDED.changed_at, version = EXCLUDED.version, updated_at = now()
WHERE {sql_supersedes("version", "changed_at", table="m")}
""")


async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    changes = latest_membership_changes(e.payload for e in events if isinstance(e.payload, SegmentMembershipChanged))
    if changes:
        await session.execute(
            APPLY,
            {
                "customer_ids": [p.customer_id for p in changes],
                "keys": [p.segment_key for p in changes],
                "names": [p.segment_name for p in changes],
                "members": [p.change == "entered" for p in changes],
                "at": [p.changed_at for p in changes],
                "versions": [p.version for p in changes],
            },
        )


def segment_copy_subscription() -> Subscription:
    # Idempotent (docs/development.md, "Idempotent handlers"): a change applied again has no greater version than
    # the row it left, so the row stays. Its events are not claimed in the inbox: a segmentation run publishes a change for
    # every customer whose membership it moves (a run over a million customers, up to a million), each of which
    # was a claim row, its index entry and its WAL here.
    return Subscription(
        name="segments",
        topics=[SEGMENTATION_EVENTS],
        handler=apply,
        event_types={SegmentMembershipChanged.EVENT_TYPE: SegmentMembershipChanged},
        idempotent=True,
    )
