import uuid
from decimal import Decimal

import sqlalchemy as sa
from fastapi import APIRouter

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from clv.fits.models import model_fit
from clv.scoring.models import customer_value, scoring_run
from clv.settings import SettingsDep
from clv.transaction_summary.models import customer_alias, transaction_summary
from clv.transaction_summary.schemas import CurrencyValueRead, CustomerValueRead, ModelValueRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])


async def resolve_customer(session, customer_id: uuid.UUID) -> uuid.UUID:
    """A merged-away id answers as its survivor."""
    survivor = (await session.execute(sa.select(customer_alias.c.survivor_id)
                                      .where(customer_alias.c.merged_id == customer_id))).scalar()
    return survivor or customer_id


@router.get("/{customer_id}/value", response_model=CustomerValueRead, responses=problem_responses(NotFound))
async def get_customer_value(customer_id: uuid.UUID, settings: SettingsDep, session: SessionDep) -> CustomerValueRead:
    """A customer's value per currency: realised to date, and the model's values once scored."""
    resolved = await resolve_customer(session, customer_id)
    t, v, f, run = transaction_summary, customer_value, model_fit, scoring_run
    rows = (await session.execute(
        sa.select(t, *[c.label(f"v_{c.name}") for c in v.c if c.name not in ("customer_id", "currency")],
                  f.c.model.label("f_model"), f.c.version.label("f_version"), run.c.settings.label("run_settings"))
        .select_from(t.outerjoin(v, sa.and_(v.c.customer_id == t.c.customer_id, v.c.currency == t.c.currency))
                     .outerjoin(f, f.c.id == v.c.fit_id).outerjoin(run, run.c.id == v.c.scoring_run_id))
        .where(t.c.customer_id == resolved).order_by(t.c.currency))).all()
    if not rows:
        raise NotFound(f"no transactions known for customer {customer_id}")
    margin = Decimal(str(settings.margin))
    return CustomerValueRead(customer_id=resolved, resolved_from=customer_id if resolved != customer_id else None,
                             by_currency=[
        CurrencyValueRead(
            currency=r.currency, purchase_count=r.purchase_count, gross_revenue=r.total_spend,
            refunded=r.refunded_total, historical_value=(margin * (r.total_spend - r.refunded_total)).quantize(Decimal("0.0001")),
            first_purchase_at=r.first_purchase_at, last_purchase_at=r.last_purchase_at,
            model=ModelValueRead(
                probability_alive=r.v_probability_alive, expected_purchases=r.v_expected_purchases,
                expected_spend=r.v_expected_spend, historical_value=r.v_historical_value,
                current_value=r.v_current_value, potential_value=r.v_potential_value,
                retention_value=r.v_retention_value, clv=r.v_clv, tier=r.v_tier, model=r.f_model,
                model_version=f"{r.f_model}-v{r.f_version}" if r.f_model else None,
                expected_purchases_months=(r.run_settings or {}).get("current_months"),
                horizon_months=(r.run_settings or {}).get("horizon_months"),
                fit_id=r.v_fit_id, scoring_run_id=r.v_scoring_run_id, scored_at=r.v_scored_at,
            ) if r.v_scored_at is not None else None,
        )
        for r in rows
    ])
