import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import NotFound

from interaction.customers import repository
from interaction.customers.schemas import CustomerProfileRead, IdentifierRead, PurchaseTotalRead


async def get_profile(session: AsyncSession, customer_id: uuid.UUID) -> CustomerProfileRead:
    found = await repository.get_profile(session, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    totals = [
        PurchaseTotalRead(currency=t.currency, purchase_count=t.count, total_spend=t.total, last_purchase_at=t.last)
        for t in found["purchase_totals"]
    ]
    return CustomerProfileRead(
        customer_id=customer_id,
        first_seen_at=found["customer"].first_seen_at,
        identifiers=[IdentifierRead(source=i.source, external_id=i.external_id) for i in found["identifiers"]],
        purchase_totals=totals,
        purchase_count=sum(t.purchase_count for t in totals),
        last_purchase_at=max((t.last_purchase_at for t in totals), default=None),
    )
