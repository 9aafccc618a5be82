"""Merge audit and undo. An undo restores the merged customer with what came from it (by home)."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import interaction as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.topics import INTERACTION_EVENTS
from shared.messaging.outbox import Outbox
from shared.pagination import encode
from shared.problems import DomainError, NotFound

from interaction.customers.models import customer, customer_merge
from interaction.customers.published import profile_updates
from interaction.identity import repository
from interaction.identity.schemas import MergeCreate, MergePage, MergeRead, UnmergeRead
from interaction.traits.service import recompute_traits


class MergeAlreadyUndone(DomainError):
    status, slug, title = 409, "merge-already-undone", "Merge already undone"


class CustomerErased(DomainError):
    status, slug, title = 409, "customer-erased", "Customer erased"


class AlreadyOneCustomer(DomainError):
    status, slug, title = 409, "already-one-customer", "Already one customer"


def _read(row: sa.Row) -> MergeRead:
    return MergeRead(
        id=row.id,
        survivor_id=row.survivor_id,
        merged_id=row.merged_id,
        reason=row.reason,
        caused_by=row.caused_by,
        merged_at=row.merged_at,
        undone_at=row.undone_at,
    )


async def get_merge(session: AsyncSession, merge_id: uuid.UUID) -> MergeRead:
    row = (await session.execute(sa.select(customer_merge).where(customer_merge.c.id == merge_id))).first()
    if row is None:
        raise NotFound(f"no merge {merge_id}")
    return _read(row)


async def merges_of(
    session: AsyncSession, customer_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> MergePage:
    if (await session.execute(sa.select(customer.c.id).where(customer.c.id == customer_id))).first() is None:
        raise NotFound(f"no customer {customer_id}")
    m = customer_merge
    q = (
        sa.select(m)
        .where(sa.or_(m.c.survivor_id == customer_id, m.c.merged_id == customer_id))
        .order_by(m.c.merged_at, m.c.id)
        .limit(limit + 1)
    )
    if after is not None:
        q = q.where(sa.tuple_(m.c.merged_at, m.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    rows = (await session.execute(q)).all()
    page = rows[:limit]
    return MergePage(
        items=[_read(r) for r in page], next_cursor=encode(page[-1].merged_at, page[-1].id) if len(rows) > limit else None
    )


async def undo_merge(session: AsyncSession, outbox: Outbox, merge_id: uuid.UUID) -> UnmergeRead:
    await repository.lock_identity(session)
    row = (await session.execute(sa.select(customer_merge).where(customer_merge.c.id == merge_id).with_for_update())).first()
    if row is None:
        raise NotFound(f"no merge {merge_id}")
    if row.undone_at is not None:
        raise MergeAlreadyUndone(f"merge {merge_id} was undone at {row.undone_at.isoformat()}")
    live = await repository.live_customer(session, row.survivor_id)
    if live is None:  # a chain of merges deeper than `live_customer` follows: nothing to undo into
        raise NotFound(f"no customer {row.survivor_id}")
    erased = (await session.execute(sa.select(customer.c.erased_at).where(customer.c.id == live))).scalar()
    if erased is not None:
        raise CustomerErased(f"customer {live} was erased; its merges can no longer be undone")
    purchase_ids, touchpoint_ids = await repository.unmerge(session, row, live)
    await recompute_traits(session, {live, row.merged_id})
    now = datetime.now(UTC)
    event = contracts.CustomerUnmerged(
        customer_id=row.survivor_id,
        merge_id=row.id,
        survivor_id=row.survivor_id,
        restored_id=row.merged_id,
        purchase_ids=purchase_ids,
        touchpoint_ids=touchpoint_ids,
        unmerged_at=now,
        version=(await repository.next_versions(session, 1))[0],
    )
    # The live customer lost the attributes the merge filled; the restored one has its own again.
    profiles = await profile_updates(session, dict.fromkeys([live, row.merged_id], (contracts.SOURCE, now)))
    await outbox.add(
        session, INTERACTION_EVENTS, [Envelope.wrap(event, source=contracts.SOURCE, subject=str(row.survivor_id)), *profiles]
    )
    return UnmergeRead(
        id=row.id,
        survivor_id=row.survivor_id,
        merged_id=row.merged_id,
        reason=row.reason,
        caused_by=row.caused_by,
        merged_at=row.merged_at,
        undone_at=now,
        restored_id=row.merged_id,
        purchase_ids=purchase_ids,
        touchpoint_ids=touchpoint_ids,
    )


async def merge_by_hand(session: AsyncSession, outbox: Outbox, body: MergeCreate) -> MergeRead:
    await repository.lock_identity(session)
    live = []
    for cid in body.customer_ids:
        found = await repository.live_customer(session, cid)
        if found is None:
            raise NotFound(f"no customer {cid}")
        live.append(found)
    if live[0] == live[1]:
        raise AlreadyOneCustomer(f"{body.customer_ids[0]} and {body.customer_ids[1]} are already customer {live[0]}")
    rows = (
        await session.execute(
            sa.select(customer.c.id, customer.c.first_seen_at, customer.c.erased_at).where(customer.c.id.in_(live))
        )
    ).all()
    if any(r.erased_at is not None for r in rows):
        raise CustomerErased("an erased customer cannot be merged")
    survivor, merged = (r.id for r in sorted(rows, key=lambda r: (r.first_seen_at, str(r.id))))
    merge_id = uuid.uuid4()
    await repository.merge(session, [(merge_id, survivor, merged, body.reason, [])])
    await recompute_traits(session, {survivor})
    now = datetime.now(UTC)
    event = contracts.CustomerMerged(
        customer_id=survivor,
        merge_id=merge_id,
        survivor_id=survivor,
        merged_id=merged,
        reason=body.reason,
        merged_at=now,
        version=(await repository.next_versions(session, 1))[0],
    )
    profiles = await profile_updates(session, {survivor: (contracts.SOURCE, now)})  # filled from the merged customer
    merged_event = Envelope.wrap(event, source=contracts.SOURCE, subject=str(survivor))
    await outbox.add(session, INTERACTION_EVENTS, [merged_event, *profiles])
    return await get_merge(session, merge_id)
