import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.contracts.lifecycle import Stage
from shared.validation import StorableText


class PropositionKind(StrEnum):
    OFFER = "offer"
    BUNDLE = "bundle"
    SERVICE_LEVEL = "service_level"


class Tier(StrEnum):
    PLATINUM = "platinum"
    GOLD = "gold"
    SILVER = "silver"
    BRONZE = "bronze"


class ValueBasis(StrEnum):
    """The customer value a proposition's uplift applies to (docs/clv.md, Values)."""

    CLV = "clv"  # the expected value as it stands
    POTENTIAL = "potential"  # development: cross- and up-sell towards the wallet (potential_value)
    RETENTION = "retention"  # retention and win-back: keeping or regaining the customer (retention_value)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    IGNORED = "ignored"


Money = Decimal


class PropositionFields(BaseModel):
    description: str | None = Field(None, max_length=2000)
    target_tiers: list[Tier] = Field(default_factory=list, max_length=4, description="Empty: every tier.")
    target_segments: list[str] = Field(
        default_factory=list, max_length=50, description="Segment keys (e.g. `rfm:champions`); empty: any segment."
    )
    target_stages: list[Stage] = Field(default_factory=list, max_length=6, description="Empty: every stage.")
    min_clv: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4)
    min_probability_alive: float | None = Field(None, ge=0, le=1)
    budget: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4, description="Total spend allowed; none: unlimited.")
    max_contacts: int | None = Field(None, ge=1, le=1000, description="Per customer within `contact_window_days`.")
    contact_window_days: int = Field(30, ge=1, le=3650)
    holdout_fraction: float = Field(0.1, ge=0, le=0.9, description="Share of customers held out as the control group.")
    outcome_window_days: int = Field(30, ge=1, le=365, description="Revenue after a delivery counts this long.")
    active: bool = True
    value_basis: ValueBasis = Field(
        ValueBasis.CLV,
        description=(
            "What `expected_uplift` multiplies: `clv`; `potential` for development offers (cross- and up-sell: "
            "potential_value, the wallet not yet spent); `retention` for retention and win-back offers "
            "(retention_value, what keeping the customer alive is worth)."
        ),
    )


class PropositionCreate(PropositionFields):
    """A value proposition: an offer, a bundle or a service level, with whom it targets and what it may spend."""

    name: str = Field(min_length=1, max_length=200, examples=["Free express shipping"])
    kind: PropositionKind
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    cost: Money = Field(ge=0, max_digits=18, decimal_places=4, description="Cost per delivery.", examples=["5.00"])
    expected_uplift: float = Field(ge=0, le=10, description="Expected relative CLV gain if delivered (0.1 = +10%).")


class PropositionUpdate(BaseModel):
    """Fields to change; the others stay."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    cost: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4)
    expected_uplift: float | None = Field(None, ge=0, le=10)
    target_tiers: list[Tier] | None = Field(None, max_length=4)
    target_segments: list[str] | None = Field(None, max_length=50)
    target_stages: list[Stage] | None = Field(None, max_length=6)
    min_clv: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4)
    min_probability_alive: float | None = Field(None, ge=0, le=1)
    budget: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4)
    max_contacts: int | None = Field(None, ge=1, le=1000)
    contact_window_days: int | None = Field(None, ge=1, le=3650)
    holdout_fraction: float | None = Field(None, ge=0, le=0.9)
    outcome_window_days: int | None = Field(None, ge=1, le=365)
    active: bool | None = None
    value_basis: ValueBasis | None = None


class PropositionRead(PropositionCreate):
    id: uuid.UUID
    budget_spent: Money
    created_at: datetime
    updated_at: datetime


class PropositionPage(BaseModel):
    items: list[PropositionRead]
    next_cursor: str | None = None


class Candidate(BaseModel):
    proposition_id: uuid.UUID
    name: str
    eligible: bool
    expected_gain: Money | None = Field(None, description="expected_uplift × the value basis − cost.")
    reasons: list[str] = Field(description="Why it is eligible and ranked so, or why not.")


class NextBest(BaseModel):
    customer_id: uuid.UUID
    currency: str
    best: Candidate | None
    candidates: list[Candidate]


class DeliveryCreate(BaseModel):
    proposition_id: uuid.UUID
    channel: str = Field(min_length=1, max_length=40, examples=["email"])
    partner: str | None = Field(None, max_length=200)


class DeliveryRead(BaseModel):
    id: uuid.UUID
    proposition_id: uuid.UUID
    customer_id: uuid.UUID
    group: str = Field(
        examples=["treatment", "holdout"], description="holdout: recorded as the control group, not delivered, no cost."
    )
    channel: str
    partner: str | None
    cost: Money
    expected_gain: Money | None
    delivered_at: datetime
    outcome: Outcome | None
    outcome_at: datetime | None = Field(description="When the outcome was first recorded (or last corrected).")
    corrections: int = Field(0, description="How many audited corrections changed the outcome.")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = None


class OutcomeCreate(BaseModel):
    outcome: Outcome


class CorrectionCreate(BaseModel):
    """Change a recorded outcome: the audit keeps who (the caller the gateway vouched for) and why."""

    outcome: Outcome
    reason: StorableText = Field(min_length=1, max_length=1000, examples=["the agent clicked accepted by mistake"])


class CorrectionRead(BaseModel):
    id: uuid.UUID
    delivery_id: uuid.UUID
    from_outcome: Outcome
    to_outcome: Outcome
    reason: str
    corrected_by: str = Field(description="The API key id (or token subject) and role of the caller.")
    corrected_at: datetime


class CorrectionPage(BaseModel):
    items: list[CorrectionRead]
    next_cursor: str | None = None


class Performance(BaseModel):
    proposition_id: uuid.UUID
    currency: str
    treated: int
    holdout: int
    accepted: int
    declined: int
    ignored: int
    pending: int
    uptake_rate: float | None = Field(description="accepted / treated with an outcome.")
    revenue_per_treated: Money | None
    revenue_per_holdout: Money | None
    incremental_revenue: Money | None = Field(description="(per treated − per holdout) × treated.")
    cost: Money
    net_incremental_revenue: Money | None


class GapGroupBy(StrEnum):
    SEGMENT = "segment"
    PROPOSITION = "proposition"


class GapRow(BaseModel):
    group: str
    responses: int
    mean_perceived: float
    mean_expected: float
    mean_gap: float = Field(description="Mean of expected − perceived (0–10 scale); > 0: falls short.")
    customers_with_gap: int
    gap_points: float = Field(description="Σ max(0, expected − perceived) over responses.")
    cost_to_close: Money = Field(description="cost_per_point × gap_points.")


class GapReport(BaseModel):
    group_by: GapGroupBy
    cost_per_point: Money
    rows: list[GapRow]
