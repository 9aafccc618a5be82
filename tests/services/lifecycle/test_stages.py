"""Automatic stages through the real projection on Postgres: out of order, duplicates, identity, the clock."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.lifecycle import Stage
from lifecycle.rules.engine import RuleParameters, derive_stage
from lifecycle.stages import repository, service
from tests.services.lifecycle.conftest import (
    NOW, cancellation, days_ago, feedback, lead, purchase, value,
)


def random_history(rng: random.Random, cid: uuid.UUID) -> list:
    events, pids = [], []
    for _ in range(rng.randint(1, 8)):
        at = days_ago(rng.uniform(0, 700))
        kind = rng.choice(["lead", "qualified", "purchase", "purchase", "purchase", "feedback", "value", "cancel"])
        if kind == "lead" or kind == "qualified":
            events.append(lead(cid, at, qualified=kind == "qualified"))
        elif kind == "purchase":
            pids.append(uuid.uuid4())
            events.append(purchase(cid, at, pids[-1]))
        elif kind == "feedback":
            events.append(feedback(cid, at, rng.randint(0, 10)))
        elif kind == "value":
            events.append(value(cid, at, rng.choice(["gold", "bronze"]), rng.random()))
        elif pids:
            events.append(cancellation(cid, at, rng.choice(pids)))
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stage_equals_the_rules_on_the_sorted_history(lc, seed):
    """Late, duplicate and out-of-order events in random batches: the stored history is derive_stage's."""
    rng = random.Random(seed)
    customers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(12)]
    events = [e for c in customers for e in random_history(rng, c)]
    arrivals = events + rng.sample(events, len(events) // 3)  # redelivered duplicates
    rng.shuffle(arrivals)
    cut = sorted(rng.sample(range(1, len(arrivals)), 4))
    for batch in (arrivals[i:j] for i, j in zip([0, *cut], [*cut, len(arrivals)], strict=True)):
        await lc.apply(batch)

    async with lc.runtime.session_factory() as session:
        facts = await repository.load_facts(session, customers)
    for cid in customers:
        expected = derive_stage(facts[cid].facts if cid in facts else [], RuleParameters(), NOW)
        rows = await lc.sql("SELECT stage, entered_at, left_at FROM lifecycle.stage_history WHERE customer_id = :c "
                            "ORDER BY entered_at, id", c=cid)
        assert [(r.stage, r.entered_at) for r in rows] == [(t.stage.value, t.entered_at) for t in expected]
        assert [r.left_at for r in rows] == [t.entered_at for t in expected[1:]] + ([None] if expected else [])
        if expected:
            assert (await lc.view(cid))["stage"] == expected[-1].stage
        else:
            assert (await lc.client.get(f"/v1/customers/{cid}/lifecycle")).status_code == 404
    # Facts are stored once per event however often it arrived (a cancellation is a refund and a cancellation).
    [(n,)] = await lc.sql("SELECT count(*) FROM lifecycle.customer_fact")
    assert n == len({(e.source, e.id) for e in events}) + len(
        {e.id for e in events if e.type == "purchase.refunded" and e.data["cancelled"]})


async def test_lifecycle_path_and_stage_changed_events(lc):
    cid = uuid.uuid4()
    await lc.apply([lead(cid, days_ago(60))])
    await lc.apply([lead(cid, days_ago(50), qualified=True), purchase(cid, days_ago(40))])
    await lc.apply([purchase(cid, days_ago(30)), purchase(cid, days_ago(20)), feedback(cid, days_ago(10), nps=10)])
    view = await lc.view(cid)
    assert [h["stage"] for h in view["history"]] == ["approach", "acquisition", "development", "retention", "loyalty"]
    assert view["order_count"] == 3 and view["total_spend"] == "30.0000"
    first = view["history"][0]
    assert first["duration_seconds"] == pytest.approx(10 * 86400)
    assert first["rule"] == "lead" and first["trigger_event_id"]
    assert view["history"][-1]["left_at"] is None and view["history"][-1]["reason"].endswith("promoter")
    funnel = (await lc.client.get("/v1/lifecycle/analytics/funnel")).json()["cohorts"]
    assert [s["entered"] for s in funnel[0]["steps"]] == [1, 1, 1, 1, 1], "the funnel row follows the history"
    rows = await lc.sql("SELECT payload FROM lifecycle.outbox ORDER BY id")
    import orjson
    changes = [(orjson.loads(r.payload)["data"]["from_stage"], orjson.loads(r.payload)["data"]["to_stage"]) for r in rows]
    assert changes == [(None, "approach"), ("approach", "acquisition"), ("acquisition", "development"),
                       ("development", "retention"), ("retention", "loyalty")]


async def test_referral_credits_the_referrer(lc):
    referrer, friend = uuid.uuid4(), uuid.uuid4()
    await lc.apply([purchase(referrer, days_ago(30)), purchase(referrer, days_ago(20)), purchase(referrer, days_ago(10))])
    assert (await lc.view(referrer))["stage"] == "retention"
    await lc.apply([lead(friend, days_ago(5), referred_by=referrer)])
    assert (await lc.view(referrer))["stage"] == "loyalty"
    assert (await lc.view(friend))["stage"] == "approach"


async def test_low_probability_alive_churns_and_a_purchase_reactivates(lc):
    cid = uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(100)), value(cid, days_ago(50), "bronze", 0.05)])
    assert (await lc.view(cid))["stage"] == "churned"
    await lc.apply([purchase(cid, days_ago(1))])
    view = await lc.view(cid)
    assert [h["stage"] for h in view["history"]] == ["development", "churned", "retention"]
    assert view["history"][-1]["rule"] == "reactivation"


async def test_sweep_churns_inactive_customers_as_of_now(lc):
    cid, fresh = uuid.uuid4(), uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(300)), purchase(fresh, days_ago(1))])
    assert (await lc.view(cid))["stage"] == "development"
    async with lc.runtime.session_factory() as session, session.begin():
        outcome = await service.sweep(session, lc.runtime.outbox, as_of=NOW + timedelta(days=100))
    assert outcome.moves == {("development", "churned"): 1}
    view = await lc.view(cid)
    assert view["stage"] == "churned" and view["history"][-1]["rule"] == "inactivity"
    assert view["history"][-1]["entered_at"].startswith(str((days_ago(300) + timedelta(days=365)).date()))
    assert (await lc.view(fresh))["stage"] == "development"
    # The endpoint applies the clock as of now: nothing else is due.
    resp = await lc.client.post("/v1/lifecycle/sweeps")
    assert resp.status_code == 200 and resp.json()["moved"] == 0


async def test_merge_folds_unmerge_restores_erasure_forgets(lc):
    from shared.contracts import interaction
    from tests.services.lifecycle.conftest import envelope

    survivor, merged = uuid.uuid4(), uuid.uuid4()
    p_merged = uuid.uuid4()
    await lc.apply([purchase(survivor, days_ago(30)), purchase(merged, days_ago(20), p_merged)])
    merge_id = uuid.uuid4()
    await lc.apply([envelope(interaction.CustomerMerged(customer_id=survivor, merge_id=merge_id, survivor_id=survivor,
                                                        merged_id=merged, reason="same email", merged_at=NOW))])
    view = await lc.view(survivor)
    assert view["stage"] == "retention" and view["order_count"] == 2
    # The merged-away id answers as its survivor, as the profile does.
    resp = await lc.client.get(f"/v1/customers/{merged}/lifecycle")
    assert resp.status_code == 200 and resp.json()["customer_id"] == str(survivor), resp.text
    assert resp.json()["resolved_from"] == str(merged)

    await lc.apply([envelope(interaction.CustomerUnmerged(customer_id=survivor, merge_id=merge_id,
                                                          survivor_id=survivor, restored_id=merged,
                                                          purchase_ids=[p_merged], unmerged_at=NOW))])
    assert (await lc.view(survivor))["stage"] == "development"
    assert (await lc.view(merged))["order_count"] == 1

    await lc.apply([envelope(interaction.CustomerErased(customer_id=merged, erased_at=NOW))])
    assert (await lc.client.get(f"/v1/customers/{merged}/lifecycle")).status_code == 404
    for table in ("customer_fact", "stage_history", "customer_stage"):
        [(n,)] = await lc.sql(f"SELECT count(*) FROM lifecycle.{table} WHERE customer_id = :c", c=merged)
        assert n == 0, table
    assert (await lc.view(survivor))["order_count"] == 1


async def test_manual_moves_enforce_allowed_transitions(lc):
    cid = uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(10))])
    url = f"/v1/customers/{cid}/lifecycle/moves"

    resp = await lc.client.post(url, json={"to_stage": "loyalty", "reason": "VIP by decree"})
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert "development → loyalty is not an allowed manual move" in problem["detail"]
    assert problem["allowed"] == ["churned", "retention"] and problem["from_stage"] == "development"

    resp = await lc.client.post(url, json={"to_stage": "development", "reason": "again"})
    assert resp.status_code == 422 and "already in development" in resp.json()["detail"]

    resp = await lc.client.post(url, json={"to_stage": "retention"})
    assert resp.status_code == 422 and "reason" in resp.json()["detail"]

    resp = await lc.client.post(f"/v1/customers/{uuid.uuid4()}/lifecycle/moves",
                                json={"to_stage": "retention", "reason": "why not"})
    assert resp.status_code == 404

    resp = await lc.client.post(url, json={"to_stage": "churned", "reason": "closed the account", "actor": "ada"})
    assert resp.status_code == 201, resp.text
    last = resp.json()["history"][-1]
    assert (last["stage"], last["rule"], last["reason"], last["actor"]) == ("churned", "manual", "closed the account",
                                                                         "ada")
    # The manual move is a fact: later events replay on top of it (a purchase reactivates).
    await lc.apply([purchase(cid, datetime.now(UTC) + timedelta(minutes=1))])
    assert (await lc.view(cid))["stage"] == Stage.RETENTION


async def test_a_purchase_that_moves_nothing_still_updates_the_aggregates(lc):
    cid = uuid.uuid4()
    await lc.apply([purchase(cid, days_ago(30)), purchase(cid, days_ago(20))])
    before = await lc.view(cid)
    await lc.apply([purchase(cid, days_ago(10), amount="5.50")])
    after = await lc.view(cid)
    assert after["history"] == before["history"] and after["stage"] == "retention"
    assert (after["order_count"], after["total_spend"]) == (3, "25.5000")
    assert after["last_purchase_at"].startswith(str(days_ago(10).date()))
