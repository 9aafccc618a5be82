import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import StorableText

CURRENCY = r"^[A-Z]{3}$"
# A touchpoint's channel (support, phone, email…) or `return` (handling one refund).
KIND = r"^[a-z][a-z0-9_.-]{0,39}$"


class Quadrant(StrEnum):
    """Shapiro, Rangan, Moriarty & Ross (1987), as in Buttle's customer portfolio analysis."""

    CARRIAGE_TRADE = "carriage_trade"  # high revenue, high cost to serve
    PASSIVE = "passive"  # high revenue, low cost to serve
    AGGRESSIVE = "aggressive"  # low revenue, high cost to serve
    BARGAIN_BASEMENT = "bargain_basement"  # low revenue, low cost to serve


def quadrant(high_revenue: bool, high_cost: bool) -> Quadrant:
    if high_revenue:
        return Quadrant.CARRIAGE_TRADE if high_cost else Quadrant.PASSIVE
    return Quadrant.AGGRESSIVE if high_cost else Quadrant.BARGAIN_BASEMENT


class ProjectedProfit(BaseModel):
    """From the latest scoring (None until the customer is scored in the currency): see docs/clv.md."""

    expected_revenue: Decimal = Field(description="Discounted expected revenue over the scoring horizon: CLV / margin.")
    expected_purchases: float = Field(ge=0, description="Discounted expected purchases over the horizon.")
    expected_cost_to_serve: Decimal = Field(
        description="expected_purchases × cost to serve per order to date (shipping, service, returns)."
    )
    projected_profit: Decimal = Field(description="expected_revenue × margin_rate − expected_cost_to_serve.")
    scored_at: datetime


class CurrencyProfit(BaseModel):
    currency: str = Field(examples=["EUR"])
    orders: int = Field(description="Orders that count (cancelled ones do not).")
    revenue: Decimal = Field(description="What the customer paid (after discounts).")
    refunded: Decimal
    net_revenue: Decimal = Field(description="revenue − refunded.")
    cost_of_goods: Decimal = Field(
        description="Line costs from the events, else revenue × default cost rate; in proportion to what was not refunded."
    )
    shipping_cost: Decimal
    returns_cost: Decimal = Field(description="Refunds × the `return` touchpoint cost.")
    service_cost: Decimal = Field(description="Service touchpoints × their cost per kind (main currency only).")
    touchpoints: int = Field(description="Touchpoints charged in this currency.")
    discounts: Decimal = Field(description="Price reductions granted (already out of revenue).")
    cost_to_serve: Decimal = Field(description="shipping + service + returns + discounts.")
    margin_rate: float | None = Field(None, description="(net_revenue − cost_of_goods) / net_revenue; None at 0.")
    profit: Decimal = Field(description="net_revenue − cost_of_goods − shipping − service − returns.")
    quadrant: Quadrant | None = Field(None, description="Against the currency's median thresholds.")
    projected: ProjectedProfit | None = None


class CustomerProfitRead(BaseModel):
    customer_id: uuid.UUID
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into this one.")
    by_currency: list[CurrencyProfit]


class QuadrantSummary(BaseModel):
    quadrant: Quadrant
    customers: int
    avg_net_revenue: Decimal | None
    avg_cost_to_serve: Decimal | None
    avg_profit: Decimal | None
    total_profit: Decimal
    share_of_profit: float | None = Field(None, description="This quadrant's part of the currency's total profit.")


class ProfitabilityMatrix(BaseModel):
    """Revenue × cost to serve, one currency (amounts in different currencies are never compared)."""

    currency: str
    customers: int
    revenue_threshold: Decimal | None = Field(description="High revenue: net revenue above this (median unless set).")
    cost_to_serve_threshold: Decimal | None = Field(description="High cost to serve: above this (median unless set).")
    quadrants: list[QuadrantSummary]


class CostRate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(pattern="^(category|partner)$", description="A product category, or a partner (source).")
    key: StorableText = Field(min_length=1, max_length=100, examples=["books"])
    cost_rate: float = Field(ge=0, le=10, description="Cost of goods as a fraction of the price (0.6 = 60%).")


class TouchpointCost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=KIND, examples=["support", "phone", "return"])
    currency: str = Field(pattern=CURRENCY, examples=["EUR"])
    cost: Decimal = Field(ge=0, max_digits=14, decimal_places=4, examples=["6.50"])


class CostSettings(BaseModel):
    """Costs the events do not carry. Cost of goods without a unit cost: the category's rate, else the
    partner's, else `fallback_cost_rate` (1 − the service's margin setting; read-only)."""

    model_config = ConfigDict(extra="forbid")
    cost_rates: list[CostRate] = Field(default_factory=list, max_length=1000)
    touchpoint_costs: list[TouchpointCost] = Field(default_factory=list, max_length=1000)
    fallback_cost_rate: float | None = Field(None, description="Read-only; ignored when sent.")
