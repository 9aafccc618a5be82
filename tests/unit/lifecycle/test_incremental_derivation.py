"""Incremental derivation agrees with the full replay: on random histories (fixed seeds), applying the facts
that extend a customer's history to its stored state gives the transitions and the state the whole sorted
history gives. Facts that do not extend it (late, out of order, cancellations) are left to the full replay."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.lifecycle import Stage

from lifecycle.rules.engine import DerivationState, Fact, FactKind, RuleParameters, derive

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEEDS = list(range(300))
# Short windows as well as the defaults, so churn, reactivation, loyalty and pruning all happen.
RULE_SETS = [
    RuleParameters(),
    RuleParameters(repeat_window_days=20, loyalty_window_days=30, loyalty_min_purchases=2, inactivity_days=40),
]


def random_history(rng: random.Random, n: int) -> list[Fact]:
    facts = []
    purchases = []
    for i in range(n):
        kind = rng.choices(list(FactKind), weights=[3, 2, 2, 10, 1, 3, 1, 4, 2, 2])[0]
        # Few distinct days, so that ties at one instant (ordered by kind, source, id) happen often.
        at = T0 + timedelta(days=rng.choice([0, 1, 2, 5, 10, 20, 35, 50, 80, 120, 200, 400, 450]), hours=rng.choice([0, 0, 6]))
        kw: dict = {}
        if kind is FactKind.PURCHASE:
            kw["purchase_id"] = f"p{i}"
            purchases.append(f"p{i}")
        elif kind in (FactKind.CANCELLATION, FactKind.REFUND):
            kw["purchase_id"] = rng.choice(purchases) if purchases else "p-none"
        elif kind is FactKind.FEEDBACK:
            kw["nps"] = rng.randint(0, 10)
        elif kind is FactKind.VALUE:
            kw |= {"tier": rng.choice(["gold", "bronze", "platinum"]), "probability_alive": rng.random()}
        elif kind is FactKind.MANUAL:
            kw |= {"to_stage": rng.choice(list(Stage)), "reason": "test", "actor": "t"}
        facts.append(Fact(kind, at, rng.choice(["a", "b"]), f"e{i}", **kw))
    return facts


def through_json(state: DerivationState) -> DerivationState:
    # As stored: a jsonb column.
    return DerivationState.from_json(json.loads(json.dumps(state.to_json())))


@pytest.mark.parametrize("rules", RULE_SETS, ids=["default", "short windows"])
def test_incremental_derivation_equals_full_replay(rules):
    incremental_steps = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        facts = sorted(random_history(rng, rng.randint(1, 30)), key=lambda f: f.sort_key)
        as_of = T0 + timedelta(days=rng.choice([1, 100, 500, 900]))
        full, full_state, full_clocked = derive(facts, rules, as_of)

        # The history arrives in chunks, each applied to the state stored after the one before when every fact
        # of the chunk extends it, else replayed from the start (as the service does).
        cuts = sorted(rng.sample(range(1, len(facts)), min(len(facts) - 1, rng.randint(0, 4)))) + [len(facts)]
        transitions, state, applied = [], None, []
        for start, end in zip([0, *cuts], cuts, strict=False):
            chunk = facts[start:end]
            if state is not None and all(state.extended_by(f) for f in chunk):
                new, state, _ = derive(chunk, rules, state=state)
                transitions += new
                incremental_steps += 1
            else:
                transitions, state, _ = derive(applied + chunk, rules)
            applied += chunk
            state = through_json(state)
        # The clock at `as_of` after the last fact, from the state.
        tail, end_state, clocked = derive([], rules, as_of, state=state)

        assert transitions + tail == full, f"seed {seed}"
        assert end_state == full_state, f"seed {seed}"
        assert clocked == full_clocked, f"seed {seed}"
    # Most chunks must have taken the incremental path, or this test would prove nothing.
    assert incremental_steps > len(SEEDS)


def test_a_late_fact_or_a_cancellation_does_not_extend_the_history():
    rules = RuleParameters()
    purchase = Fact(FactKind.PURCHASE, T0 + timedelta(days=10), "a", "e1", purchase_id="p1")
    _, state, _ = derive([purchase], rules)
    assert not state.extended_by(Fact(FactKind.LEAD, T0, "a", "e0"))  # earlier than the purchase
    assert not state.extended_by(purchase)  # the same fact again
    assert not state.extended_by(Fact(FactKind.CANCELLATION, T0 + timedelta(days=11), "a", "e2", purchase_id="p1"))
    assert state.extended_by(Fact(FactKind.PURCHASE, T0 + timedelta(days=11), "a", "e3", purchase_id="p2"))
    assert not DerivationState().extended_by(purchase)  # no state: nothing to extend


def test_state_keeps_only_purchases_the_rules_can_still_read():
    rules = RuleParameters(loyalty_window_days=30)
    facts = [Fact(FactKind.PURCHASE, T0 + timedelta(days=d), "a", f"e{d}", purchase_id=f"p{d}") for d in (0, 5, 100)]
    _, state, _ = derive(facts, rules)
    assert state.purchases == [T0 + timedelta(days=100)]
    _, state, _ = derive(facts + [Fact(FactKind.LEAD, T0 + timedelta(days=101), "a", "l")], rules)
    assert state.purchases == [T0 + timedelta(days=100)]
