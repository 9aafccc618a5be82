import uuid

import sqlalchemy as sa
from fastapi import APIRouter

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from lifecycle.stages.models import customer_stage, stage_history
from lifecycle.stages.schemas import CustomerLifecycleRead, StageHistoryRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}/lifecycle", response_model=CustomerLifecycleRead, responses=problem_responses(NotFound))
async def get_customer_lifecycle(customer_id: uuid.UUID, session: SessionDep) -> CustomerLifecycleRead:
    """A customer's current lifecycle stage and the stages before it."""
    row = (await session.execute(sa.select(customer_stage).where(customer_stage.c.customer_id == customer_id))).first()
    if row is None:
        raise NotFound(f"customer {customer_id} has no lifecycle stage yet")
    h = stage_history
    history = (await session.execute(
        sa.select(h.c.stage, h.c.entered_at, h.c.left_at, h.c.reason, h.c.trigger_event_id)
        .where(h.c.customer_id == customer_id).order_by(h.c.entered_at, h.c.id)
    )).all()
    return CustomerLifecycleRead(
        customer_id=customer_id, stage=row.stage, stage_entered_at=row.stage_entered_at, order_count=row.order_count,
        total_spend=row.total_spend, last_purchase_at=row.last_purchase_at,
        history=[StageHistoryRead.model_validate(r, from_attributes=True) for r in history],
    )
