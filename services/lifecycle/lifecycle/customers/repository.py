import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.customers.models import known_customer

# Fixed shape whatever the batch size (`unnest`): prepared once, not compiled again per batch.
RECORD_CREATED = sa.text("""
INSERT INTO lifecycle.known_customer (customer_id, first_seen_at)
SELECT * FROM unnest(CAST(:customer_ids AS uuid[]), CAST(:first_seen AS timestamptz[]))
ON CONFLICT DO NOTHING
""")


async def record_created(session: AsyncSession, rows: list[tuple[uuid.UUID, datetime]]) -> None:
    """Idempotent: a redelivered `customer.created` changes nothing (an erased customer stays erased)."""
    if rows:
        await session.execute(RECORD_CREATED, {"customer_ids": [c for c, _ in rows], "first_seen": [at for _, at in rows]})


async def record_erased(session: AsyncSession, customer_id: uuid.UUID, at: datetime) -> None:
    # Upsert: an erasure may be the first we hear of a customer (a copy started after its creation).
    await session.execute(
        insert(known_customer)
        .values(customer_id=customer_id, first_seen_at=at, erased_at=at)
        .on_conflict_do_update(index_elements=[known_customer.c.customer_id], set_={"erased_at": at, "updated_at": sa.func.now()})
    )


async def state(session: AsyncSession, customer_id: uuid.UUID) -> sa.Row | None:
    return (
        await session.execute(sa.select(known_customer.c.erased_at).where(known_customer.c.customer_id == customer_id))
    ).one_or_none()
