import uuid

import sqlalchemy as sa
from fastapi import APIRouter

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from clv.transaction_summary.models import transaction_summary
from clv.transaction_summary.schemas import CurrencyValueRead, CustomerValueRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}/value", response_model=CustomerValueRead, responses=problem_responses(NotFound))
async def get_customer_value(customer_id: uuid.UUID, session: SessionDep) -> CustomerValueRead:
    """A customer's value per currency (historical value for now; CLV models come with the clv issue)."""
    t = transaction_summary
    rows = (await session.execute(sa.select(t).where(t.c.customer_id == customer_id).order_by(t.c.currency))).all()
    if not rows:
        raise NotFound(f"no transactions known for customer {customer_id}")
    return CustomerValueRead(customer_id=customer_id, by_currency=[
        CurrencyValueRead(currency=r.currency, purchase_count=r.purchase_count, historical_value=r.total_spend,
                          first_purchase_at=r.first_purchase_at, last_purchase_at=r.last_purchase_at)
        for r in rows
    ])
