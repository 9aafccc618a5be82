import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle.customers.models import known_customer


def not_erased_sql(column: str) -> str:
    """A condition for statements storing facts: the customer in `column` (a fact's home) was not erased. Lifecycle
    remembers erased ids here, and a fact arriving after its home's erasure is dropped (shared/contracts/identity.py,
    "Erasure"). An erasure later in the same batch is recorded after the batch's facts are stored: it deletes
    them as it deletes the ones of earlier batches."""
    return f"NOT EXISTS (SELECT 1 FROM lifecycle.known_customer k WHERE k.customer_id = {column} AND k.erased_at IS NOT NULL)"


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


ERASED_AMONG = sa.text(
    "SELECT customer_id FROM lifecycle.known_customer WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND erased_at IS NOT NULL"
)


async def erased_among(session: AsyncSession, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    return set((await session.execute(ERASED_AMONG, {"ids": list(set(ids))})).scalars())
