"""The lifecycle rules as a pure function: table-driven event sequences, and order/duplicate independence."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts.lifecycle import Stage

from lifecycle.rules.engine import Fact, FactKind, RuleParameters, derive_stage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = RuleParameters()
A, Q, D, R, L, C = Stage.APPROACH, Stage.ACQUISITION, Stage.DEVELOPMENT, Stage.RETENTION, Stage.LOYALTY, Stage.CHURNED


def f(kind: str, day: float, n: int = 0, **kw) -> Fact:
    ids = {"purchase_id": f"p{n}"} if kind in ("purchase", "cancellation") else {}
    # One event id, one content (as the store guarantees: one row per event id and kind).
    suffix = "".join(f"-{v}" for _, v in sorted(kw.items()))
    return Fact(FactKind(kind), T0 + timedelta(days=day), "src", f"{kind}-{day}-{n}{suffix}", **(ids | kw))


def stages(facts, rules=RULES, as_of=None) -> list[Stage]:
    return [t.stage for t in derive_stage(facts, rules, as_of)]


CASES = [
    ("nothing", [], []),
    ("a lead is Approach", [f("lead", 0)], [A]),
    ("qualified lead is Acquisition", [f("lead", 0), f("qualified_lead", 1)], [A, Q]),
    ("an open deal is Acquisition", [f("lead", 0), f("deal_open", 2)], [A, Q]),
    ("first purchase is Development", [f("lead", 0), f("purchase", 5)], [A, D]),
    ("purchase without a lead goes straight to Development", [f("purchase", 0)], [D]),
    ("repeat within the window is Retention", [f("purchase", 0), f("purchase", 30, 1)], [D, R]),
    (
        "a long silence between purchases churns, the next purchase reactivates",
        [f("purchase", 0), f("purchase", 400, 1)],
        [D, C, R],
    ),
    ("a cancelled purchase does not count", [f("purchase", 0), f("purchase", 30, 1), f("cancellation", 40, 1)], [D]),
    (
        "three purchases and a promoter is Loyalty",
        [f("purchase", 0), f("purchase", 10, 1), f("purchase", 20, 2), f("feedback", 25, nps=9)],
        [D, R, L],
    ),
    (
        "a detractor is no advocacy",
        [f("purchase", 0), f("purchase", 10, 1), f("purchase", 20, 2), f("feedback", 25, nps=6)],
        [D, R],
    ),
    ("a referral is advocacy", [f("referral", 0), f("purchase", 1), f("purchase", 2, 1), f("purchase", 3, 2)], [D, R, L]),
    (
        "a top tier with high p_alive is advocacy",
        [f("purchase", 0), f("purchase", 10, 1), f("purchase", 20, 2), f("value", 21, tier="gold", probability_alive=0.9)],
        [D, R, L],
    ),
    (
        "a top tier with low p_alive is not",
        [f("purchase", 0), f("purchase", 10, 1), f("purchase", 20, 2), f("value", 21, tier="gold", probability_alive=0.5)],
        [D, R],
    ),
    ("low probability alive churns", [f("purchase", 0), f("value", 50, tier="bronze", probability_alive=0.1)], [D, C]),
    ("low p_alive does not churn a prospect", [f("lead", 0), f("value", 5, tier="bronze", probability_alive=0.1)], [A]),
    (
        "a purchase after churn reactivates to Retention",
        [f("purchase", 0), f("value", 50, probability_alive=0.1, tier="x"), f("purchase", 60, 1)],
        [D, C, R],
    ),
    ("a lead after a purchase does not move back", [f("purchase", 0), f("lead", 5)], [D]),
    ("manual move wins", [f("purchase", 0), f("manual", 3, to_stage=C, reason="asked", actor="ada")], [D, C]),
]


@pytest.mark.parametrize(("name", "facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rules_table(name, facts, expected):
    assert stages(facts) == expected


def test_inactivity_churns_as_of_the_clock():
    facts = [f("purchase", 0)]
    assert stages(facts, as_of=T0 + timedelta(days=364)) == [D]
    transitions = derive_stage(facts, RULES, T0 + timedelta(days=366))
    assert [t.stage for t in transitions] == [D, C]
    assert transitions[-1].entered_at == T0 + timedelta(days=365)
    assert transitions[-1].rule == "inactivity"


def test_parameters_change_the_outcome():
    facts = [f("purchase", 0), f("purchase", 30, 1)]
    assert stages(facts, RuleParameters(repeat_window_days=10)) == [D]
    assert stages(facts, RuleParameters(repeat_window_days=30)) == [D, R]


def test_transitions_carry_trigger_and_reason():
    [t] = derive_stage([f("purchase", 0)], RULES)
    assert (t.from_stage, t.stage, t.rule, t.reason, t.trigger_event_id) == (
        None,
        D,
        "first_purchase",
        "first purchase",
        "purchase-0-0",
    )


fact_strategy = st.builds(
    lambda kind, day, n, nps, p: f(
        kind,
        day,
        n,
        **({"nps": nps} if kind == "feedback" else {}),
        **({"tier": "gold", "probability_alive": p} if kind == "value" else {}),
    ),
    st.sampled_from(
        [
            "lead",
            "qualified_lead",
            "deal_open",
            "purchase",
            "purchase",
            "purchase",
            "cancellation",
            "feedback",
            "referral",
            "value",
        ]
    ),
    st.integers(0, 800),
    st.integers(0, 5),
    st.integers(0, 10),
    st.floats(0, 1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(fact_strategy, max_size=25), st.randoms(use_true_random=False))
def test_stage_is_independent_of_arrival_order_and_duplicates(facts, rnd: random.Random):
    """Late, duplicate and out-of-order facts: the same set gives the same transitions."""
    as_of = T0 + timedelta(days=900)
    expected = derive_stage(facts, RULES, as_of)
    shuffled = facts + rnd.sample(facts, k=len(facts) // 2)  # duplicates
    rnd.shuffle(shuffled)
    assert derive_stage(shuffled, RULES, as_of) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(fact_strategy, max_size=25))
def test_history_is_a_chain_in_time(facts):
    transitions = derive_stage(facts, RULES, T0 + timedelta(days=900))
    for before, after in zip(transitions, transitions[1:], strict=False):
        assert after.from_stage is before.stage
        assert after.entered_at >= before.entered_at
        assert after.stage is not before.stage


def test_a_manual_move_the_replay_finds_illegal_moves_nothing():
    """The move was checked against Retention; a late fact dated before it makes the stage there Churned, from
    which Loyalty is not an allowed manual move: the history never shows churned → loyalty."""
    move = f("manual", 50, to_stage=L, reason="VIP")
    assert stages([f("purchase", 0), f("purchase", 30, 1), move]) == [D, R, L]
    late_churn = Fact(FactKind.VALUE, T0 + timedelta(days=40), "clv", "v", tier="bronze", probability_alive=0.05)
    assert stages([f("purchase", 0), f("purchase", 30, 1), late_churn, move]) == [D, R, C]


def test_refunds_never_move_a_stage():
    facts = [f("purchase", 0), f("purchase", 30, 1)]
    refund = Fact(FactKind.REFUND, T0 + timedelta(days=500), "src", "r", purchase_id="p1")
    assert derive_stage([*facts, refund], RULES) == derive_stage(facts, RULES)
