import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class ModelValueRead(BaseModel):
    """Values from the latest scoring run (see docs/clv.md for the formulas)."""

    probability_alive: float = Field(ge=0, le=1)
    expected_purchases: float = Field(ge=0, description="Over the scoring run's current period.")
    expected_spend: Decimal = Field(description="Expected revenue per future purchase (Gamma-Gamma).")
    historical_value: Decimal = Field(description="Realised margin to date, net of refunds, at scoring time.")
    current_value: Decimal = Field(description="Discounted expected margin over the current period.")
    potential_value: Decimal = Field(description="Extra discounted margin over the horizon if retained.")
    clv: Decimal = Field(description="Discounted expected margin over the lifetime horizon.")
    tier: str = Field(examples=["platinum", "gold", "silver", "bronze"])
    fit_id: uuid.UUID
    scoring_run_id: uuid.UUID
    scored_at: datetime


class CurrencyValueRead(BaseModel):
    currency: str = Field(examples=["EUR"])
    purchase_count: int = Field(examples=[3], description="Purchases that still count (cancelled ones do not).")
    gross_revenue: Decimal = Field(examples=["149.70"])
    refunded: Decimal = Field(examples=["0.00"])
    historical_value: Decimal = Field(description="Realised margin to date: margin × (revenue − refunds).",
                                      examples=["149.70"])
    first_purchase_at: datetime
    last_purchase_at: datetime
    model: ModelValueRead | None = Field(None, description="None until a scoring run has valued the customer.")


class CustomerValueRead(BaseModel):
    """The clv service's part of the 360° view."""

    customer_id: uuid.UUID
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into this one.")
    by_currency: list[CurrencyValueRead]
