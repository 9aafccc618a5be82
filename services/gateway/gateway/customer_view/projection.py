"""Keeps the view copy in step with the domain events (its own inbox consumer of the four domain topics).

Every event about a customer marks the customer's row: parts read from the owners before it are not served
as fresh any more (any part may change on any topic: lifecycle counts orders from interaction's purchases).
Merges and unmerges also mark every id that resolved through the customers involved. `customer.erased`
deletes the customer's row and the rows resolving to it, and remembers the id so a later event about the
customer (the topics are not ordered with each other) does not make a row again (R8). The owner versions
of stage.changed (and stage.cleared) and customer.value_updated are kept per part (greatest wins: shared/contracts/ordering.py).
`segmentation.run_completed` (a run rewrote every customer's scores, clusters or tiers) marks the segmentation
part of every row at once (`view_part_changed`).
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.interaction import CustomerErased, CustomerMerged, CustomerUnmerged
from shared.contracts.lifecycle import StageChanged, StageCleared
from shared.contracts.segmentation import SegmentationRunCompleted
from shared.messaging.inbox import ConsumedEvent, Subscription

from gateway.customer_view import repository
from gateway.webhooks.events import DOMAIN_EVENT_TYPES, DOMAIN_TOPICS


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


async def apply_events(session: AsyncSession, events: list[ConsumedEvent], at: datetime | None = None) -> None:
    at = at or datetime.now(UTC)
    erased: set[uuid.UUID] = set()
    touched: dict[uuid.UUID, list[int | None]] = {}  # id -> [lifecycle version, value version]
    resolving: set[uuid.UUID] = set()
    whole_part_changed = False
    for e in events:
        p = e.payload
        if isinstance(p, SegmentationRunCompleted):
            whole_part_changed = True
            continue
        cid = getattr(p, "customer_id", None)
        if not isinstance(cid, uuid.UUID):
            continue
        if isinstance(p, CustomerErased):
            erased.add(cid)
            touched.pop(cid, None)
            continue
        ids = [cid]
        if isinstance(p, CustomerMerged):
            ids.append(p.merged_id)
        elif isinstance(p, CustomerUnmerged):
            ids.append(p.restored_id)
        if len(ids) > 1:
            resolving.update(ids)
        for i in ids:
            touched.setdefault(i, [None, None])
        if isinstance(p, StageChanged | StageCleared):
            touched[cid][0] = _max(touched[cid][0], p.version)
        elif isinstance(p, CustomerValueUpdated):
            touched[cid][1] = _max(touched[cid][1], p.version)
    if erased:
        keys = [str(c) for c in erased]
        await session.execute(repository.FORGET, {"ids": list(erased)})
        await session.execute(repository.REMEMBER_ERASED, {"keys": keys})
    if touched:
        ids = sorted(touched)  # sorted: concurrent batches lock rows in one order
        await session.execute(
            repository.TOUCH,
            {
                "at": at,
                "ids": ids,
                "lifecycle_versions": [touched[c][0] for c in ids],
                "value_versions": [touched[c][1] for c in ids],
            },
        )
    if resolving:
        await session.execute(repository.TOUCH_RESOLVING_TO, {"at": at, "ids": sorted(resolving)})
    if whole_part_changed:
        await session.execute(repository.PART_CHANGED, {"part": "segmentation", "at": at})


def view_copy_subscription() -> Subscription:
    # Idempotent: an event applied again keeps the greater owner versions and marks its rows once more (their
    # parts are then read from the owners again); an erased customer stays remembered, so no row comes back. Its
    # events are not claimed in the inbox: half the gateway's claims (tests/services/gateway/test_view_copy_idempotent.py).
    return Subscription(
        name="customer-view",
        topics=list(DOMAIN_TOPICS),
        event_types=dict(DOMAIN_EVENT_TYPES),
        handler=apply_events,
        idempotent=True,
    )
