import uuid
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from clv.profitability import service
from clv.profitability.schemas import CURRENCY, CostSettings, CustomerProfitRead, ProfitabilityMatrix
from clv.settings import SettingsDep

# Under /v1/value (clv's at the gateway). Reading is for analysts; changing the cost settings is an admin's
# (the gateway's role policy).
router = APIRouter(prefix="/v1/value/profitability", tags=["profitability"])
Threshold = Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=4)]


@router.get("/customers/{customer_id}", response_model=CustomerProfitRead, responses=problem_responses(NotFound))
async def get_customer_profit(customer_id: uuid.UUID, settings: SettingsDep, session: SessionDep) -> CustomerProfitRead:
    """A customer's profit to date and projected, cost to serve and quadrant, per currency."""
    return await service.customer_profit(session, customer_id, settings)


@router.get("/matrix", response_model=ProfitabilityMatrix)
async def get_matrix(
    settings: SettingsDep,
    session: SessionDep,
    currency: Annotated[str, Query(pattern=CURRENCY)],
    revenue_threshold: Threshold = None,
    cost_to_serve_threshold: Threshold = None,
) -> ProfitabilityMatrix:
    """Customers, averages and profit per quadrant (carriage trade, passive, aggressive, bargain basement) of
    net revenue × cost to serve; the thresholds are the currency's medians unless given."""
    return await service.matrix(session, currency, settings, revenue_threshold, cost_to_serve_threshold)


@router.get("/settings", response_model=CostSettings)
async def get_cost_settings(settings: SettingsDep, session: SessionDep) -> CostSettings:
    """Default cost rates (per category, per partner) and cost per touchpoint kind and currency."""
    return await service.get_settings(session, settings)


@router.put("/settings", response_model=CostSettings, responses=problem_responses(service.DuplicateSetting))
async def put_cost_settings(body: CostSettings, settings: SettingsDep, session: SessionDep) -> CostSettings:
    """Replace the cost settings (they apply to all history at the next read)."""
    return await service.put_settings(session, body, settings)
