import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class ModelValueRead(BaseModel):
    """Values from the latest scoring run (see docs/clv.md for the formulas)."""

    probability_alive: float = Field(ge=0, le=1)
    expected_purchases: float = Field(
        ge=0,
        description=("Expected purchases over the next `expected_purchases_months` months (the scoring run's current period)."),
    )
    expected_purchases_months: int | None = Field(None, description="The period of `expected_purchases`.")
    expected_spend: Decimal = Field(description="Expected revenue per future purchase (Gamma-Gamma).")
    historical_value: Decimal = Field(description="Realised margin to date, net of refunds, at scoring time.")
    current_value: Decimal = Field(description="Discounted expected margin over the current period.")
    clv: Decimal = Field(description="Discounted expected margin over the lifetime horizon (`horizon_months`).")
    horizon_months: int | None = Field(
        None, description="The lifetime horizon of `clv`, `potential_value` and `retention_value`."
    )
    potential_value: Decimal = Field(
        description=(
            "Development upside: margin × P(alive) × (wallet − expected spend if alive) over the horizon, the wallet "
            "being the high-quantile spend the customer's history allows (docs/clv.md)."
        )
    )
    retention_value: Decimal = Field(description="Retention upside: CLV if certainly alive − CLV.")
    tier: str = Field(examples=["platinum", "gold", "silver", "bronze"])
    model: str | None = Field(None, examples=["pareto_nbd"], description="The transaction model that scored the customer.")
    model_version: str | None = Field(None, examples=["pareto_nbd-v7"])
    fit_id: uuid.UUID
    scoring_run_id: uuid.UUID
    scored_at: datetime


class CurrencyValueRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    purchase_count: int = Field(examples=[3], description="Purchases that still count (cancelled ones do not).")
    gross_revenue: Decimal = Field(examples=["149.70"])
    refunded: Decimal = Field(examples=["0.00"])
    historical_value: Decimal = Field(description="Realised margin to date: margin × (revenue − refunds).", examples=["149.70"])
    first_purchase_at: datetime
    last_purchase_at: datetime
    model: ModelValueRead | None = Field(None, description="None until a scoring run has valued the customer.")


class CustomerValueRead(BaseModel):
    """The clv service's part of the 360° view."""

    customer_id: uuid.UUID
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into this one.")
    by_currency: list[CurrencyValueRead]
