import uuid

from fastapi import APIRouter

from shared.db import ReadSessionDep
from shared.problems import NotFound, problem_responses

from segmentation.profiles import repository
from segmentation.profiles.schemas import (
    CurrencySummaryRead,
    CurrentSegment,
    CustomerSegmentationRead,
    ScoresRead,
    ValueRead,
)
from segmentation.rules.repository import latest_run_id
from segmentation.rules.service import DEFAULT_RFM_FAMILY
from segmentation.segments.repository import resolve_customer

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}/segmentation", response_model=CustomerSegmentationRead, responses=problem_responses(NotFound))
async def get_customer_segmentation(customer_id: uuid.UUID, session: ReadSessionDep) -> CustomerSegmentationRead:
    """What segmentation knows of a customer: aggregates, value, stage, RFM scores and current segments."""
    resolved = await resolve_customer(session, customer_id)
    a = await repository.aggregate(session, resolved)
    if a is None:
        raise NotFound(f"segmentation knows nothing of customer {customer_id}")
    currencies = await repository.currency_summaries(session, resolved)
    scores = None
    run_id = await latest_run_id(session, DEFAULT_RFM_FAMILY)
    if run_id is not None and (row := await repository.rfm_scores(session, run_id, resolved)) is not None:
        scores = ScoresRead(run_id=run_id, r=row.r, f=row.f, m=row.m, segment_key=row.key)
    segments = await repository.current_segments(session, resolved)
    return CustomerSegmentationRead(
        customer_id=resolved,
        order_count=a["order_count"],
        first_purchase_at=a["first_purchase_at"],
        last_purchase_at=a["last_purchase_at"],
        touchpoint_count=a["touchpoint_count"],
        last_touch_at=a["last_touch_at"],
        by_currency=[CurrencySummaryRead.model_validate(dict(r)) for r in currencies],
        value=ValueRead(
            clv=a["clv"], currency=a["clv_currency"], tier=a["value_tier"], probability_alive=a["p_alive"], as_of=a["value_as_of"]
        ),
        stage=a["stage"],
        rfm=scores,
        segments=[CurrentSegment.model_validate(dict(s)) for s in segments],
    )
