"""Targeting facts from other services: segment memberships (segmentation) and lifecycle stages (lifecycle).

A membership or stage of a customer erased before it arrived is dropped (clv.erased_customer, written by the
interaction consumer: segmentation and lifecycle may publish about a customer before they apply its erasure)."""

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import not_erased_sql
from shared.contracts.lifecycle import STAGE_EVENT_TYPES, StageChanged, StageCleared, stage_of
from shared.contracts.ordering import latest_per_key, sql_supersedes
from shared.contracts.segmentation import SegmentMembershipChanged, latest_membership_changes
from shared.contracts.topics import LIFECYCLE_EVENTS, SEGMENTATION_EVENTS
from shared.messaging.inbox import ConsumedEvent, Subscription

ERASED = "clv.erased_customer"
# Segmentation's order wins whatever the arrival order: a change is applied only if its version is greater than
# the one stored (shared/contracts/ordering.py). A membership left stays as a row with member false and its
# exit's version: deleted, a late entry made before the exit would bring it back.
MEMBERSHIPS = sa.text(f"""
INSERT INTO clv.segment_membership AS m (customer_id, segment_key, segment_name, kind, member, changed_at, version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:keys AS text[]), CAST(:names AS text[]),
    CAST(:kinds AS text[]), CAST(:members AS boolean[]), CAST(:at AS timestamptz[]), CAST(:versions AS bigint[]))
    AS b(customer_id, segment_key, segment_name, kind, member, changed_at, version)
WHERE {not_erased_sql(ERASED, "b.customer_id")}
ON CONFLICT (customer_id, segment_key) DO UPDATE SET segment_name = EXCLUDED.segment_name, kind = EXCLUDED.kind,
    member = EXCLUDED.member, changed_at = EXCLUDED.changed_at, version = EXCLUDED.version, updated_at = now()
WHERE {sql_supersedes("version", "changed_at", table="m")}
""")
# Lifecycle's order wins whatever the arrival order: the greatest version (shared/contracts/ordering.py), never
# the newest changed_at (a correction after a late event is dated in the past).
STAGES = sa.text(f"""
INSERT INTO clv.customer_stage AS s (customer_id, stage, changed_at, version)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:stages AS text[]),
    CAST(:at AS timestamptz[]), CAST(:versions AS bigint[])) AS b(customer_id, stage, changed_at, version)
WHERE {not_erased_sql(ERASED, "b.customer_id")}
ON CONFLICT (customer_id) DO UPDATE SET stage = EXCLUDED.stage, changed_at = EXCLUDED.changed_at,
    version = EXCLUDED.version, updated_at = now()
WHERE {sql_supersedes("version", "changed_at")}
""")


async def apply_targeting_events(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    # Each copy is folded to what supersedes per key first: the order within the batch does not matter.
    changes = latest_membership_changes(e.payload for e in events if isinstance(e.payload, SegmentMembershipChanged))
    if changes:
        await session.execute(
            MEMBERSHIPS,
            {
                "customer_ids": [p.customer_id for p in changes],
                "keys": [p.segment_key for p in changes],
                "names": [p.segment_name for p in changes],
                "kinds": [p.kind.value for p in changes],
                "members": [p.change == "entered" for p in changes],
                "at": [p.changed_at for p in changes],
                "versions": [p.version for p in changes],
            },
        )
    stages = [e.payload for e in events if isinstance(e.payload, StageChanged | StageCleared)]  # cleared: no stage
    if stages:
        latest = list(latest_per_key(stages, lambda p: p.customer_id, lambda p: p.version, lambda p: p.changed_at).values())
        await session.execute(
            STAGES,
            {
                "customer_ids": [p.customer_id for p in latest],
                "stages": [stage_of(p) for p in latest],
                "at": [p.changed_at for p in latest],
                "versions": [p.version for p in latest],
            },
        )


def targeting_subscription() -> Subscription:
    return Subscription(
        name="targeting",
        topics=[SEGMENTATION_EVENTS, LIFECYCLE_EVENTS],
        handler=apply_targeting_events,
        event_types={SegmentMembershipChanged.EVENT_TYPE: SegmentMembershipChanged, **STAGE_EVENT_TYPES},
    )
