import uuid

import sqlalchemy as sa
from fastapi import APIRouter

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from segmentation.purchase_summary.models import purchase_summary
from segmentation.purchase_summary.schemas import CurrencySummaryRead, CustomerSegmentationRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}/segmentation", response_model=CustomerSegmentationRead,
            responses=problem_responses(NotFound))
async def get_customer_segmentation(customer_id: uuid.UUID, session: SessionDep) -> CustomerSegmentationRead:
    """What segmentation knows of a customer: purchase aggregates per currency."""
    t = purchase_summary
    rows = (await session.execute(sa.select(t).where(t.c.customer_id == customer_id).order_by(t.c.currency))).all()
    if not rows:
        raise NotFound(f"no purchases known for customer {customer_id}")
    return CustomerSegmentationRead(
        customer_id=customer_id,
        order_count=sum(r.order_count for r in rows),
        last_purchase_at=max(r.last_purchase_at for r in rows),
        by_currency=[CurrencySummaryRead.model_validate(r, from_attributes=True) for r in rows],
    )
