"""The lifecycle rules as a pure function: a customer's facts, sorted, replayed through the rule set.

`derive_stage(facts, rules, as_of)` is the single definition of a customer's stage. The projection keeps
each customer's facts (one row per event) and re-derives the customers a batch touches, so late, duplicate
and out-of-order events give the same stage as the sorted history would: the stage is a function of the
set of facts, never of their arrival order.

Rule order (first match wins at each fact; see docs/lifecycle.md):
  0. manual          a person's move: the stage they chose
  1. inactivity      (a clock rule, checked before each fact and at `as_of`) no purchase for
                     `inactivity_days` while Development/Retention/Loyalty → Churned
  2. reactivation    a purchase while Churned → Retention
  3. low_p_alive     a value update with probability alive < `churn_probability_alive_below`
                     while Development/Retention/Loyalty → Churned
  4. loyalty         ≥ `loyalty_min_purchases` purchases within `loyalty_window_days` and an advocacy
                     signal (promoter NPS ≥ `promoter_min_nps`, a referral, or a tier in `top_tiers` with
                     probability alive ≥ `loyalty_min_probability_alive`) → Loyalty
  5. repeat_purchase a purchase within `repeat_window_days` of the previous one → Retention
  6. first_purchase  a purchase → Development
  7. qualified       a qualified lead or an open deal → Acquisition
  8. lead            a lead → Approach
Rules 4–8 only move forward (Approach < Acquisition < Development < Retention < Loyalty) and never out of
Churned; only reactivation and manual moves leave Churned.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.lifecycle import Stage


class FactKind(StrEnum):
    LEAD = "lead"
    QUALIFIED_LEAD = "qualified_lead"
    DEAL_OPEN = "deal_open"
    PURCHASE = "purchase"
    CANCELLATION = "cancellation"
    FEEDBACK = "feedback"
    REFERRAL = "referral"
    VALUE = "value"
    MANUAL = "manual"
    REFUND = "refund"  # money only (net spend); the rules never read it


# Tie-break for facts at the same instant: a deterministic order, so ties cannot depend on arrival.
KIND_ORDER = {k: i for i, k in enumerate(FactKind)}
RANK = {Stage.APPROACH: 1, Stage.ACQUISITION: 2, Stage.DEVELOPMENT: 3, Stage.RETENTION: 4, Stage.LOYALTY: 5}
ACTIVE = {Stage.DEVELOPMENT, Stage.RETENTION, Stage.LOYALTY}
# Manual moves a person may make: from → allowed targets. Checked by the API when the move is made and again
# when the facts are replayed, so a history never shows a move the API forbids (a late fact may have changed
# the stage the move was made from: the move is then kept as a fact but changes nothing).
ALLOWED_MANUAL: dict[Stage, set[Stage]] = {
    Stage.APPROACH: {Stage.ACQUISITION, Stage.CHURNED},
    Stage.ACQUISITION: {Stage.APPROACH, Stage.DEVELOPMENT, Stage.CHURNED},
    Stage.DEVELOPMENT: {Stage.RETENTION, Stage.CHURNED},
    Stage.RETENTION: {Stage.DEVELOPMENT, Stage.LOYALTY, Stage.CHURNED},
    Stage.LOYALTY: {Stage.RETENTION, Stage.CHURNED},
    Stage.CHURNED: {Stage.APPROACH, Stage.RETENTION},
}
RULE_ORDER = ["manual", "inactivity", "reactivation", "low_p_alive", "loyalty", "repeat_purchase",
              "first_purchase", "qualified", "lead"]


class RuleParameters(BaseModel):
    """The tunable parameters of the lifecycle rules (one version of the rule set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repeat_window_days: int = Field(365, ge=1, le=3650, description="A purchase this soon after the previous one is a repeat.")
    loyalty_window_days: int = Field(365, ge=1, le=3650, description="Window for sustained repeat buying.")
    loyalty_min_purchases: int = Field(3, ge=2, le=1000, description="Purchases within the loyalty window.")
    promoter_min_nps: int = Field(9, ge=0, le=10, description="NPS at or above this is a promoter.")
    top_tiers: list[Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]] = Field(["platinum", "gold"], max_length=20, description="Value tiers that count as advocacy.")
    loyalty_min_probability_alive: float = Field(0.7, ge=0, le=1, description="Probability alive a top tier needs.")
    inactivity_days: int = Field(365, ge=1, le=3650, description="No purchase for this long → Churned.")
    churn_probability_alive_below: float = Field(0.2, ge=0, le=1, description="Probability alive under this → Churned.")


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing that happened to a customer, as far as the lifecycle rules care."""

    kind: FactKind
    occurred_at: datetime
    source: str
    event_id: str
    purchase_id: str | None = None
    nps: int | None = None
    tier: str | None = None
    probability_alive: float | None = None
    to_stage: Stage | None = None
    actor: str | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.event_id, self.kind.value)

    @property
    def sort_key(self) -> tuple:
        return (self.occurred_at, KIND_ORDER[self.kind], self.source, self.event_id)


@dataclass(frozen=True, slots=True)
class Transition:
    from_stage: Stage | None
    stage: Stage
    entered_at: datetime
    rule: str
    reason: str
    trigger_source: str | None = None
    trigger_event_id: str | None = None
    actor: str | None = None


def derive_stage(facts: Iterable[Fact], rules: RuleParameters, as_of: datetime | None = None) -> list[Transition]:
    """Every stage transition the rules give on the sorted, de-duplicated facts (the last one is the stage).

    `as_of` is the clock for the time-based rule (inactivity) after the last fact; every fact is applied.
    """
    ordered = sorted({f.key: f for f in facts}.values(), key=lambda f: f.sort_key)
    cancelled = {f.purchase_id for f in ordered if f.kind is FactKind.CANCELLATION and f.purchase_id}
    inactivity = timedelta(days=rules.inactivity_days)
    repeat_window = timedelta(days=rules.repeat_window_days)
    loyalty_window = timedelta(days=rules.loyalty_window_days)
    top_tiers = set(rules.top_tiers)

    out: list[Transition] = []
    stage: Stage | None = None
    purchases: list[datetime] = []
    anchor: datetime | None = None  # inactivity counts from the last purchase or manual move
    promoter = referral = qualified = False
    tier: str | None = None
    p_alive: float | None = None

    def move(to: Stage, at: datetime, rule: str, reason: str, fact: Fact | None = None) -> None:
        nonlocal stage
        if to is stage:
            return
        out.append(Transition(stage, to, at, rule, reason, fact.source if fact else None,
                              fact.event_id if fact else None, fact.actor if fact else None))
        stage = to

    def check_inactivity(now: datetime) -> None:
        if stage in ACTIVE and anchor is not None and anchor + inactivity <= now:
            move(Stage.CHURNED, anchor + inactivity, "inactivity", f"no purchase for {rules.inactivity_days} days")

    for f in ordered:
        if f.kind is FactKind.REFUND:
            continue
        check_inactivity(f.occurred_at)
        kind = f.kind
        if kind is FactKind.PURCHASE and f.purchase_id in cancelled:
            continue  # a cancelled order never counts as a purchase
        if kind is FactKind.MANUAL:
            anchor = f.occurred_at
            if f.to_stage is not None and stage is not None and f.to_stage in ALLOWED_MANUAL[stage]:
                move(f.to_stage, f.occurred_at, "manual", f.reason or "manual move", f)
            continue
        if kind is FactKind.PURCHASE:
            purchases.append(f.occurred_at)
            anchor = f.occurred_at
            if stage is Stage.CHURNED:
                move(Stage.RETENTION, f.occurred_at, "reactivation", "purchase after churn", f)
                continue
        elif kind is FactKind.FEEDBACK:
            promoter = promoter or (f.nps is not None and f.nps >= rules.promoter_min_nps)
        elif kind is FactKind.REFERRAL:
            referral = True
        elif kind in (FactKind.QUALIFIED_LEAD, FactKind.DEAL_OPEN):
            qualified = True
        elif kind is FactKind.VALUE:
            tier, p_alive = f.tier, f.probability_alive
            if stage in ACTIVE and p_alive is not None and p_alive < rules.churn_probability_alive_below:
                move(Stage.CHURNED, f.occurred_at, "low_p_alive",
                     f"probability alive {p_alive:.2f} < {rules.churn_probability_alive_below}", f)
                continue
        if stage is Stage.CHURNED:
            continue
        target = _forward_target(purchases, f.occurred_at, rules, loyalty_window, repeat_window, top_tiers,
                                 promoter, referral, qualified, tier, p_alive, kind)
        if target is not None and RANK[target[0]] > RANK.get(stage, 0):
            move(target[0], f.occurred_at, target[1], target[2], f)
    if as_of is not None:
        check_inactivity(as_of)
    return out


def _forward_target(purchases: list[datetime], now: datetime, rules: RuleParameters, loyalty_window: timedelta,
                    repeat_window: timedelta, top_tiers: set[str], promoter: bool, referral: bool, qualified: bool,
                    tier: str | None, p_alive: float | None, kind: FactKind) -> tuple[Stage, str, str] | None:
    """Rules 4–8, first match wins: the highest stage the facts so far justify."""
    recent = sum(1 for t in purchases if t > now - loyalty_window)
    top_tier = tier in top_tiers and p_alive is not None and p_alive >= rules.loyalty_min_probability_alive
    if recent >= rules.loyalty_min_purchases and (promoter or referral or top_tier):
        signal = "promoter" if promoter else "referral" if referral else f"top tier {tier}"
        return Stage.LOYALTY, "loyalty", f"{recent} purchases in {rules.loyalty_window_days} days and {signal}"
    if len(purchases) >= 2 and kind is FactKind.PURCHASE and purchases[-1] - purchases[-2] <= repeat_window:
        return Stage.RETENTION, "repeat_purchase", f"repeat purchase within {rules.repeat_window_days} days"
    if purchases:
        return Stage.DEVELOPMENT, "first_purchase", "first purchase"
    if qualified:
        return Stage.ACQUISITION, "qualified", "qualified lead or open deal"
    if kind is FactKind.LEAD:
        return Stage.APPROACH, "lead", "lead captured"
    return None
