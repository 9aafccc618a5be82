import uuid
from decimal import Decimal

import sqlalchemy as sa
from fastapi import APIRouter, Request

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from clv.scoring.models import customer_value
from clv.transaction_summary.models import customer_alias, transaction_summary
from clv.transaction_summary.schemas import CurrencyValueRead, CustomerValueRead, ModelValueRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


async def resolve_customer(session, customer_id: uuid.UUID) -> uuid.UUID:
    """A merged-away id answers as its survivor."""
    survivor = (await session.execute(sa.select(customer_alias.c.survivor_id)
                                      .where(customer_alias.c.merged_id == customer_id))).scalar()
    return survivor or customer_id


@router.get("/{customer_id}/value", response_model=CustomerValueRead, responses=problem_responses(NotFound))
async def get_customer_value(customer_id: uuid.UUID, request: Request, session: SessionDep) -> CustomerValueRead:
    """A customer's value per currency: realised to date, and the model's values once scored."""
    resolved = await resolve_customer(session, customer_id)
    t, v = transaction_summary, customer_value
    rows = (await session.execute(
        sa.select(t, *[c.label(f"v_{c.name}") for c in v.c if c.name not in ("customer_id", "currency")])
        .select_from(t.outerjoin(v, sa.and_(v.c.customer_id == t.c.customer_id, v.c.currency == t.c.currency)))
        .where(t.c.customer_id == resolved).order_by(t.c.currency))).all()
    if not rows:
        raise NotFound(f"no transactions known for customer {customer_id}")
    margin = Decimal(str(request.app.state.runtime.settings.margin))
    return CustomerValueRead(customer_id=resolved, resolved_from=customer_id if resolved != customer_id else None,
                             by_currency=[
        CurrencyValueRead(
            currency=r.currency, purchase_count=r.purchase_count, gross_revenue=r.total_spend,
            refunded=r.refunded_total, historical_value=(margin * (r.total_spend - r.refunded_total)).quantize(Decimal("0.0001")),
            first_purchase_at=r.first_purchase_at, last_purchase_at=r.last_purchase_at,
            model=ModelValueRead(
                probability_alive=r.v_probability_alive, expected_purchases=r.v_expected_purchases,
                expected_spend=r.v_expected_spend, historical_value=r.v_historical_value,
                current_value=r.v_current_value, potential_value=r.v_potential_value, clv=r.v_clv, tier=r.v_tier,
                fit_id=r.v_fit_id, scoring_run_id=r.v_scoring_run_id, scored_at=r.v_scored_at,
            ) if r.v_scored_at is not None else None,
        )
        for r in rows
    ])
