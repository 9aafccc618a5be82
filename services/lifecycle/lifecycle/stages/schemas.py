import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from shared.contracts.lifecycle import Stage


class StageHistoryRead(BaseModel):
    stage: Stage
    entered_at: datetime
    left_at: datetime | None
    reason: str
    trigger_event_id: str | None


class CustomerLifecycleRead(BaseModel):
    """The lifecycle service's part of the 360° view."""

    customer_id: uuid.UUID
    stage: Stage
    stage_entered_at: datetime
    order_count: int
    total_spend: Decimal
    last_purchase_at: datetime | None
    history: list[StageHistoryRead]
