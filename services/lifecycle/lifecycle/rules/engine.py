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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.lifecycle import Stage
from shared.validation import NO_NUL


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
RULE_ORDER = [
    "manual",
    "inactivity",
    "reactivation",
    "low_p_alive",
    "loyalty",
    "repeat_purchase",
    "first_purchase",
    "qualified",
    "lead",
]


class RuleParameters(BaseModel):
    """The tunable parameters of the lifecycle rules (one version of the rule set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repeat_window_days: int = Field(365, ge=1, le=3650, description="A purchase this soon after the previous one is a repeat.")
    loyalty_window_days: int = Field(365, ge=1, le=3650, description="Window for sustained repeat buying.")
    loyalty_min_purchases: int = Field(3, ge=2, le=1000, description="Purchases within the loyalty window.")
    promoter_min_nps: int = Field(9, ge=0, le=10, description="NPS at or above this is a promoter.")
    top_tiers: list[Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]] = Field(
        ["platinum", "gold"], max_length=20, description="Value tiers that count as advocacy."
    )
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


@dataclass(slots=True)
class DerivationState:
    """Where the rules stand after a customer's last fact: enough to apply later facts without the earlier ones.

    Kept with the customer's stage, so a fact that only extends the history (it sorts after every fact the
    customer has) is applied to this instead of replaying the whole history (docs/lifecycle.md).
    """

    stage: Stage | None = None
    # Purchase times the rules can still read: those within the loyalty window of the last fact (later facts
    # are later still), and always the last one (a repeat purchase compares with it).
    purchases: list[datetime] = field(default_factory=list)
    anchor: datetime | None = None  # inactivity counts from the last purchase or manual move
    promoter: bool = False
    referral: bool = False
    qualified: bool = False
    tier: str | None = None
    p_alive: float | None = None
    cancelled: set[str] = field(default_factory=set)  # purchase ids cancelled so far
    last_key: tuple | None = None  # sort key of the last fact applied

    def extended_by(self, fact: Fact) -> bool:
        """Whether `fact` only extends the history this state ends: it sorts after every fact applied, and it
        changes nothing about the past (a cancellation takes an earlier purchase out of the rules)."""
        return self.last_key is not None and fact.sort_key > self.last_key and fact.kind is not FactKind.CANCELLATION

    def to_json(self) -> dict:
        return {
            "stage": self.stage.value if self.stage else None,
            "purchases": [t.isoformat() for t in self.purchases],
            "anchor": self.anchor.isoformat() if self.anchor else None,
            "promoter": self.promoter,
            "referral": self.referral,
            "qualified": self.qualified,
            "tier": self.tier,
            "p_alive": self.p_alive,
            "cancelled": sorted(self.cancelled),
            "last_key": [self.last_key[0].isoformat(), *self.last_key[1:]] if self.last_key else None,
        }

    @classmethod
    def from_json(cls, d: dict) -> "DerivationState":
        last = d.get("last_key")
        return cls(
            stage=Stage(d["stage"]) if d.get("stage") else None,
            purchases=[datetime.fromisoformat(t) for t in d.get("purchases", [])],
            anchor=datetime.fromisoformat(d["anchor"]) if d.get("anchor") else None,
            promoter=d.get("promoter", False),
            referral=d.get("referral", False),
            qualified=d.get("qualified", False),
            tier=d.get("tier"),
            p_alive=d.get("p_alive"),
            cancelled=set(d.get("cancelled", [])),
            last_key=(datetime.fromisoformat(last[0]), *last[1:]) if last else None,
        )


def derive_stage(facts: Iterable[Fact], rules: RuleParameters, as_of: datetime | None = None) -> list[Transition]:
    """Every stage transition the rules give on the sorted, de-duplicated facts (the last one is the stage).

    `as_of` is the clock for the time-based rule (inactivity) after the last fact; every fact is applied.
    """
    return derive(facts, rules, as_of)[0]


def derive(
    facts: Iterable[Fact], rules: RuleParameters, as_of: datetime | None = None, state: DerivationState | None = None
) -> tuple[list[Transition], DerivationState, bool]:
    """The transitions `facts` give after `state` (None: from the start, all of the customer's facts).

    Returns (the transitions, the state after the last fact, whether the last transition comes from the
    clock at `as_of` rather than from a fact). From a state, every fact must extend it (`extended_by`):
    `derive(all, rules)` and `derive(later, rules, state=derive(earlier, rules)[1])` give the same
    transitions and the same state whenever each of `later` extends the history `earlier` ends.
    """
    ordered = sorted({f.key: f for f in facts}.values(), key=lambda f: f.sort_key)
    st = (
        DerivationState()
        if state is None
        else DerivationState(
            state.stage,
            list(state.purchases),
            state.anchor,
            state.promoter,
            state.referral,
            state.qualified,
            state.tier,
            state.p_alive,
            set(state.cancelled),
            state.last_key,
        )
    )
    if state is None:  # a cancellation takes its purchase out of the whole history, earlier facts included
        st.cancelled = {f.purchase_id for f in ordered if f.kind is FactKind.CANCELLATION and f.purchase_id}
    inactivity = timedelta(days=rules.inactivity_days)
    repeat_window = timedelta(days=rules.repeat_window_days)
    loyalty_window = timedelta(days=rules.loyalty_window_days)
    top_tiers = set(rules.top_tiers)
    out: list[Transition] = []

    def move(to: Stage, at: datetime, rule: str, reason: str, fact: Fact | None = None) -> None:
        if to is st.stage:
            return
        out.append(
            Transition(
                st.stage,
                to,
                at,
                rule,
                reason,
                fact.source if fact else None,
                fact.event_id if fact else None,
                fact.actor if fact else None,
            )
        )
        st.stage = to

    def check_inactivity(now: datetime) -> None:
        if st.stage in ACTIVE and st.anchor is not None and st.anchor + inactivity <= now:
            move(Stage.CHURNED, st.anchor + inactivity, "inactivity", f"no purchase for {rules.inactivity_days} days")

    for f in ordered:
        st.last_key = f.sort_key
        if f.kind is FactKind.REFUND:
            continue
        check_inactivity(f.occurred_at)
        kind = f.kind
        if kind is FactKind.CANCELLATION and f.purchase_id:
            st.cancelled.add(f.purchase_id)
        if kind is FactKind.PURCHASE and f.purchase_id in st.cancelled:
            continue  # a cancelled order never counts as a purchase
        if kind is FactKind.MANUAL:
            st.anchor = f.occurred_at
            if f.to_stage is not None and st.stage is not None and f.to_stage in ALLOWED_MANUAL[st.stage]:
                move(f.to_stage, f.occurred_at, "manual", f.reason or "manual move", f)
            continue
        if kind is FactKind.PURCHASE:
            st.purchases.append(f.occurred_at)
            st.anchor = f.occurred_at
            if st.stage is Stage.CHURNED:
                move(Stage.RETENTION, f.occurred_at, "reactivation", "purchase after churn", f)
                continue
        elif kind is FactKind.FEEDBACK:
            st.promoter = st.promoter or (f.nps is not None and f.nps >= rules.promoter_min_nps)
        elif kind is FactKind.REFERRAL:
            st.referral = True
        elif kind in (FactKind.QUALIFIED_LEAD, FactKind.DEAL_OPEN):
            st.qualified = True
        elif kind is FactKind.VALUE:
            st.tier, st.p_alive = f.tier, f.probability_alive
            if st.stage in ACTIVE and st.p_alive is not None and st.p_alive < rules.churn_probability_alive_below:
                move(
                    Stage.CHURNED,
                    f.occurred_at,
                    "low_p_alive",
                    f"probability alive {st.p_alive:.2f} < {rules.churn_probability_alive_below}",
                    f,
                )
                continue
        if st.stage is Stage.CHURNED:
            continue
        target = _forward_target(
            st.purchases,
            f.occurred_at,
            rules,
            loyalty_window,
            repeat_window,
            top_tiers,
            st.promoter,
            st.referral,
            st.qualified,
            st.tier,
            st.p_alive,
            kind,
        )
        if target is not None and (st.stage is None or RANK[target[0]] > RANK.get(st.stage, 0)):
            move(target[0], f.occurred_at, target[1], target[2], f)
    if st.last_key is not None and st.purchases:
        # Purchases older than the loyalty window of the last fact count for no later fact: only the last stays.
        horizon = st.last_key[0] - loyalty_window
        st.purchases = [t for t in st.purchases[:-1] if t > horizon] + st.purchases[-1:]
    after_facts = len(out)
    # The clock rule at `as_of` moves the stage, not the state: a later fact replays the clock from the state.
    stage_after_facts = st.stage
    if as_of is not None:
        check_inactivity(as_of)
    clocked = len(out) > after_facts
    st.stage = stage_after_facts
    return out, st, clocked


def _forward_target(
    purchases: list[datetime],
    now: datetime,
    rules: RuleParameters,
    loyalty_window: timedelta,
    repeat_window: timedelta,
    top_tiers: set[str],
    promoter: bool,
    referral: bool,
    qualified: bool,
    tier: str | None,
    p_alive: float | None,
    kind: FactKind,
) -> tuple[Stage, str, str] | None:
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
