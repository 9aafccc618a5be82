import uuid
from decimal import Decimal

from fastapi import APIRouter

from shared.db import ReadSessionDep
from shared.problems import NotFound, problem_responses

from clv.settings import SettingsDep
from clv.transaction_summary import repository
from clv.transaction_summary.schemas import CurrencyValueRead, CustomerValueRead, ModelValueRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


@router.get("/{customer_id}/value", response_model=CustomerValueRead, responses=problem_responses(NotFound))
async def get_customer_value(customer_id: uuid.UUID, settings: SettingsDep, session: ReadSessionDep) -> CustomerValueRead:
    """A customer's value per currency: realised to date, and the model's values once scored."""
    rows = await repository.values_by_currency(session, customer_id)  # a merged-away id answers as its survivor
    if not rows:
        raise NotFound(f"no transactions known for customer {customer_id}")
    resolved = rows[0].customer_id
    margin = Decimal(str(settings.margin))
    return CustomerValueRead(
        customer_id=resolved,
        resolved_from=customer_id if resolved != customer_id else None,
        by_currency=[
            CurrencyValueRead(
                currency=r.currency,
                purchase_count=r.purchase_count,
                gross_revenue=r.total_spend,
                refunded=r.refunded_total,
                historical_value=(margin * (r.total_spend - r.refunded_total)).quantize(Decimal("0.0001")),
                first_purchase_at=r.first_purchase_at,
                last_purchase_at=r.last_purchase_at,
                model=ModelValueRead(
                    probability_alive=r.v_probability_alive,
                    expected_purchases=r.v_expected_purchases,
                    expected_spend=r.v_expected_spend,
                    historical_value=r.v_historical_value,
                    current_value=r.v_current_value,
                    potential_value=r.v_potential_value,
                    retention_value=r.v_retention_value,
                    clv=r.v_clv,
                    tier=r.v_tier,
                    model=r.f_model,
                    model_version=f"{r.f_model}-v{r.f_version}" if r.f_model else None,
                    expected_purchases_months=(r.run_settings or {}).get("current_months"),
                    horizon_months=(r.run_settings or {}).get("horizon_months"),
                    fit_id=r.v_fit_id,
                    scoring_run_id=r.v_scoring_run_id,
                    scored_at=r.v_scored_at,
                )
                if r.v_scored_at is not None
                else None,
            )
            for r in rows
        ],
    )
