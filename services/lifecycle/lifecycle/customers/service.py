"""Which customers exist, as interaction announced them."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import CustomerCreated
from shared.messaging.inbox import ConsumedEvent
from shared.problems import DomainError

from lifecycle.customers import repository
from lifecycle.stages import repository as stages_repo


class UnknownCustomer(DomainError):
    status, slug, title = 422, "unknown-customer", "No such customer"


async def apply(session: AsyncSession, events: list[ConsumedEvent]) -> None:
    """Part of the facts consumer's batch, so a customer is known no later than its first fact. Erasures are
    recorded in their place among the batch's identity events (stages/projection.py): a merge before the erasure
    in the same batch still counts."""
    await repository.record_created(
        session, [(e.payload.customer_id, e.payload.first_seen_at) for e in events if isinstance(e.payload, CustomerCreated)]
    )


async def existing(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """The customer an id stands for (its survivor when merged away); UnknownCustomer if interaction never
    announced it or erased it. A customer created a moment ago may not have reached lifecycle yet: the caller
    retries (the problem says so)."""
    live = await stages_repo.survivor_of(session, customer_id) or customer_id
    row = await repository.state(session, live)
    if row is None:
        raise UnknownCustomer(
            f"no customer {customer_id} (unknown to lifecycle; a customer created just now appears within moments)"
        )
    if row.erased_at is not None:
        raise UnknownCustomer(f"customer {customer_id} was erased")
    return live
