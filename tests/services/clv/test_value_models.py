"""Fits, scoring, tiers and value events on a real Postgres, fed through the service's own inbox consumer."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from shared.db import make_engine
from tests.services.clv.support import clv_service, purchase, refund, simulated_purchases
from tests.support import scalar, wait_until

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url):
    e = make_engine(database_url)
    yield e
    await e.dispose()


async def test_fit_score_tier_and_publish(database_url, engine):
    events = simulated_purchases(1200, AS_OF, seed=3)
    customers = len({e.customer_id for e in events})
    async with clv_service(database_url) as svc:
        await svc.publish(events)
        await wait_until(lambda: _count(engine, "clv.purchase", len(events)), message="purchases applied")

        created = await svc.client.post(
            "/v1/value/models/fits", json={"model": "bgnbd", "currency": "EUR", "holdout_days": 60, "as_of": AS_OF.isoformat()}
        )
        assert created.status_code == 202, created.text
        assert created.headers["location"].endswith(created.json()["id"])
        fit = await svc.poll(f"/v1/value/models/fits/{created.json()['id']}")
        assert fit["status"] == "succeeded", fit
        assert fit["progress"] == 1.0 and fit["customers"] <= customers
        t = fit["transactions"]
        assert t["converged"] and t["rows"] <= fit["customers"]
        assert all(se is not None and se > 0 for se in t["std_errors"].values())
        assert t["aic"] == pytest.approx(8 - 2 * t["log_likelihood"])
        assert 0.6 / 3 < t["params"]["r"] < 0.6 * 3, t["params"]  # 1,200 customers: the right ballpark
        assert fit["spend"]["converged"] and fit["spend"]["params"]["q"] > 1
        d = fit["diagnostics"]
        assert d["holdout_days"] == 60 and d["buckets"][0]["frequency"] == "0"
        assert sum(b["customers"] for b in d["buckets"]) == fit["customers"]
        assert d["predicted_total"] == pytest.approx(d["actual_total"], rel=0.5)

        mbg = await svc.client.post(
            "/v1/value/models/fits", json={"model": "mbgnbd", "currency": "EUR", "holdout_days": 60, "as_of": AS_OF.isoformat()}
        )
        assert (await svc.poll(f"/v1/value/models/fits/{mbg.json()['id']}"))["status"] == "succeeded"
        comparison = (await svc.client.get("/v1/value/models/comparison", params={"currency": "EUR"})).json()
        assert {f["model"] for f in comparison["fits"]} == {"bgnbd", "mbgnbd"}
        assert comparison["best_by_aic"] in {f["fit_id"] for f in comparison["fits"]}
        assert comparison["best_by_holdout"] is not None

        listed = (await svc.client.get("/v1/value/models/fits", params={"limit": 1})).json()
        assert len(listed["items"]) == 1 and listed["items"][0]["model"] == "mbgnbd"
        rest = (await svc.client.get("/v1/value/models/fits", params={"limit": 1, "cursor": listed["next_cursor"]})).json()
        assert rest["items"][0]["model"] == "bgnbd" and rest["next_cursor"] is None

        # Score with the full-history fit (no holdout) so today's values use everything.
        full = await svc.client.post("/v1/value/models/fits", json={"model": "bgnbd", "currency": "EUR"})
        full_fit = await svc.poll(f"/v1/value/models/fits/{full.json()['id']}")
        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": full_fit["id"], "margin": 0.5})
        assert run.status_code == 202, run.text
        scored = await svc.poll(f"/v1/value/scorings/{run.json()['id']}")
        assert scored["status"] == "succeeded", scored
        assert scored["customers"] == customers
        assert scored["events_published"] == customers, "a first valuation is a material change"
        th = scored["tier_thresholds"]
        assert th["platinum"] >= th["gold"] >= th["silver"]
        assert await scalar(engine, "select count(*) from clv.customer_value") == customers
        bad = await scalar(
            engine,
            """select count(*) from clv.customer_value where
            probability_alive < 0 or probability_alive > 1 or clv < 0 or potential_value < 0 or current_value > clv
            or historical_value < 0""",
        )
        assert bad == 0
        tiers = (await svc.client.get("/v1/value/tiers", params={"currency": "EUR"})).json()
        assert [t["tier"] for t in tiers["tiers"]] == ["platinum", "gold", "silver", "bronze"]
        assert sum(t["customers"] for t in tiers["tiers"]) == customers

        # Historical value is margin × net revenue.
        # The customer with the most purchases (a repeat buyer, so their own spend informs the model).
        someone = max({e.customer_id for e in events}, key=lambda c: sum(e.customer_id == c for e in events))
        value = (await svc.client.get(f"/v1/customers/{someone}/value")).json()["by_currency"][0]
        net = sum(e.amount for e in events if e.customer_id == someone)
        assert float(value["model"]["historical_value"]) == pytest.approx(0.5 * float(net), abs=1e-3)
        assert value["model"]["tier"] in {"platinum", "gold", "silver", "bronze"}

        # Scoring again with nothing new publishes nothing; a big refund lowers value and is published by the
        # incremental scoring of the customer (from the accepted fit, without a scoring run).
        again = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": full_fit["id"], "margin": 0.5})
        assert (await svc.poll(f"/v1/value/scorings/{again.json()['id']}"))["events_published"] == 0
        published = await scalar(engine, "select count(*) from clv.outbox")
        mine = [e for e in events if e.customer_id == someone]
        await svc.publish([refund(p, str(p.amount), AS_OF + timedelta(days=1)) for p in mine])
        await wait_until(lambda: _historical_is_zero(svc, someone), message="refund applied")
        after = (await svc.client.get(f"/v1/customers/{someone}/value")).json()["by_currency"][0]
        assert float(after["model"]["historical_value"]) == 0
        assert float(after["model"]["clv"]) < float(value["model"]["clv"]), "refunds lower the expected spend too"
        assert await scalar(engine, "select count(*) from clv.outbox") == published + 1
        third = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": full_fit["id"], "margin": 0.5})
        assert (await svc.poll(f"/v1/value/scorings/{third.json()['id']}"))["events_published"] == 0
        await wait_until(lambda: _outbox_sent(engine), message="value events relayed")
    relayed = svc.transport.messages("clv.events")
    assert len(relayed) == await scalar(engine, "select count(*) from clv.outbox") >= customers + 1


async def test_fits_that_cannot_be_made_fail_clearly(database_url):
    async with clv_service(database_url) as svc:
        # No data at all: the fit job fails with a reason, never a 500.
        created = await svc.client.post("/v1/value/models/fits", json={"model": "bgnbd", "currency": "USD"})
        fit = await svc.poll(f"/v1/value/models/fits/{created.json()['id']}")
        assert fit["status"] == "failed" and "at least" in fit["error"]
        nothing = await svc.client.post("/v1/value/scorings", json={"currency": "USD"})
        assert nothing.status_code == 409 and nothing.headers["content-type"] == "application/problem+json"
        failed = await svc.client.post("/v1/value/scorings", json={"currency": "USD", "fit_id": fit["id"]})
        assert failed.status_code == 409
        unknown = await svc.client.post("/v1/value/scorings", json={"currency": "USD", "fit_id": str(uuid.uuid4())})
        assert unknown.status_code == 404
        assert (await svc.client.get(f"/v1/value/models/fits/{uuid.uuid4()}")).status_code == 404
        assert (await svc.client.get("/v1/value/models/fits", params={"cursor": "nonsense"})).status_code == 422
        assert (await svc.client.post("/v1/value/models/fits", json={"model": "nope", "currency": "EUR"})).status_code == 422
        # Only first purchases: no repeat buyers to learn from.
        await svc.publish([purchase(uuid.uuid4(), "10", AS_OF - timedelta(days=i)) for i in range(20)])
        await wait_until(lambda: _summaries(svc, 20), message="purchases applied")
        created = await svc.client.post("/v1/value/models/fits", json={"model": "pareto_nbd", "currency": "EUR"})
        fit = await svc.poll(f"/v1/value/models/fits/{created.json()['id']}")
        assert fit["status"] == "failed" and "repeat purchase" in fit["error"]


async def _count(engine, table: str, expected: int) -> bool:
    return await scalar(engine, f"select count(*) from {table}") == expected


async def _outbox_sent(engine) -> bool:
    return await scalar(engine, "select count(*) from clv.outbox where sent_at is null") == 0


async def _historical_is_zero(svc, customer_id) -> bool:
    body = (await svc.client.get(f"/v1/customers/{customer_id}/value")).json()
    return float(body["by_currency"][0]["historical_value"]) == 0


async def _summaries(svc, n: int) -> bool:
    engine = svc.app.state.runtime.engine
    async with engine.connect() as conn:
        return (await conn.execute(sa.text("select count(*) from clv.transaction_summary"))).scalar() == n


async def test_scheduled_refit_fits_and_scores_each_due_currency(database_url, engine):
    events = simulated_purchases(300, datetime.now(UTC) - timedelta(days=1), seed=8)
    async with clv_service(database_url, refit_interval_s=1.8) as svc:
        await svc.publish(events)
        await wait_until(lambda: _count(engine, "clv.purchase", len(events)), message="purchases applied")
        await wait_until(
            lambda: _count(engine, "clv.scoring_run where status = 'succeeded'", 1),
            timeout=60,
            message="a scheduled fit and scoring run",
        )
        fit = (await svc.client.get("/v1/value/models/fits")).json()["items"][-1]
        # The schedule chooses the model (auto): every candidate was fitted and held out, the chosen one scored.
        assert fit["status"] == "succeeded" and fit["currency"] == "EUR" and fit["usable"], fit
        assert fit["model"] == fit["selection"]["chosen"] and len(fit["selection"]["candidates"]) == 3
        assert await scalar(engine, "select count(*) from clv.customer_value") == len({e.customer_id for e in events})


async def test_a_new_customer_is_scored_from_the_accepted_fit_without_a_scoring_run(database_url, engine):
    """Incremental scoring: once a run has accepted a fit, purchases re-score their customers in the consumer's
    transaction and publish the value with the next version of clv's order."""
    events = simulated_purchases(300, datetime.now(UTC) - timedelta(days=1), seed=5)
    async with clv_service(database_url) as svc:
        newcomer = uuid.uuid4()
        # Before any run: a purchase is stored, nobody is scored (there is no accepted fit to score from).
        await svc.publish([*events, purchase(newcomer, "40", datetime.now(UTC) - timedelta(days=30))])
        await wait_until(lambda: _count(engine, "clv.purchase", len(events) + 1), message="purchases applied")
        assert await scalar(engine, "select count(*) from clv.customer_value") == 0

        fit = await svc.client.post("/v1/value/models/fits", json={"model": "bgnbd", "currency": "EUR"})
        fit = await svc.poll(f"/v1/value/models/fits/{fit.json()['id']}")
        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": fit["id"]})
        assert (await svc.poll(f"/v1/value/scorings/{run.json()['id']}"))["status"] == "succeeded"
        first = await scalar(engine, f"select version from clv.customer_value where customer_id = '{newcomer}'")

        # A first purchase of someone new, and a repeat purchase of the newcomer: both valued without a run.
        stranger = uuid.uuid4()
        await svc.publish(
            [
                purchase(stranger, "25", datetime.now(UTC) - timedelta(days=2)),
                purchase(newcomer, "60", datetime.now(UTC) - timedelta(days=1)),
            ]
        )
        await wait_until(
            lambda: _count(engine, f"clv.customer_value where customer_id = '{stranger}'", 1), message="the stranger scored"
        )
        await wait_until(lambda: _version_above(engine, newcomer, first), message="the newcomer re-scored")
        assert await scalar(engine, "select count(*) from clv.scoring_run") == 1, "no run was posted"
        body = (await svc.client.get(f"/v1/customers/{stranger}/value")).json()["by_currency"][0]
        assert body["model"]["tier"] in {"platinum", "gold", "silver", "bronze"}
        await wait_until(lambda: _outbox_sent(engine), message="value events relayed")
    import orjson

    mine = [orjson.loads(m.value)["data"] for m in svc.transport.messages("clv.events")]
    newcomer_versions = [d["version"] for d in mine if d["customer_id"] == str(newcomer)]
    assert len(newcomer_versions) == 2 and newcomer_versions[0] < newcomer_versions[1]
    assert any(d["customer_id"] == str(stranger) and d["version"] for d in mine)


async def _version_above(engine, customer_id, version: int) -> bool:
    now = await scalar(engine, f"select version from clv.customer_value where customer_id = '{customer_id}'")
    return now is not None and now > version


async def test_three_customers_give_a_fit_that_scoring_refuses_with_the_reason(database_url):
    """The issue's case: BG/NBD on 3 customers "converged" with a, b ≈ e^11 and no SEs, and was used to score."""
    async with clv_service(database_url) as svc:
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await svc.publish(
            [
                purchase(a, "10", AS_OF - timedelta(days=200), "USD"),
                purchase(a, "12", AS_OF - timedelta(days=150), "USD"),
                purchase(b, "30", AS_OF - timedelta(days=180), "USD"),
                purchase(b, "25", AS_OF - timedelta(days=60), "USD"),
                purchase(b, "28", AS_OF - timedelta(days=20), "USD"),
                purchase(c, "6", AS_OF - timedelta(days=90), "USD"),
            ]
        )
        await wait_until(lambda: _summaries(svc, 3), message="purchases applied")
        created = await svc.client.post(
            "/v1/value/models/fits", json={"model": "bgnbd", "currency": "USD", "as_of": AS_OF.isoformat()}
        )
        fit = await svc.poll(f"/v1/value/models/fits/{created.json()['id']}")
        assert fit["status"] == "succeeded" and fit["usable"] is False, fit
        assert any("too little data: 3 customers" in p for p in fit["problems"]), fit["problems"]
        assert fit["transactions"]["usable"] is False
        refused = await svc.client.post("/v1/value/scorings", json={"currency": "USD", "fit_id": fit["id"]})
        assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
        assert "too little data" in refused.json()["detail"]
        newest = await svc.client.post("/v1/value/scorings", json={"currency": "USD"})
        assert newest.status_code == 409 and "no usable model fit" in newest.json()["detail"]
        # Choosing the model on these data: every candidate is refused, each with its reason.
        auto = await svc.client.post("/v1/value/models/fits", json={"currency": "USD", "as_of": AS_OF.isoformat()})
        assert auto.status_code == 202 and auto.json()["holdout_days"] == 90
        chosen = await svc.poll(f"/v1/value/models/fits/{auto.json()['id']}")
        assert chosen["status"] == "failed" and "no candidate model is usable" in chosen["error"]
        assert {c["model"] for c in chosen["selection"]["candidates"]} == {"bgnbd", "mbgnbd", "pareto_nbd"}
        no_holdout = await svc.client.post("/v1/value/models/fits", json={"currency": "USD", "holdout_days": 0})
        assert no_holdout.status_code == 422 and "holdout" in no_holdout.json()["detail"]


async def test_auto_fit_chooses_by_holdout_and_the_value_says_which_model_and_horizon(database_url, engine):
    events = simulated_purchases(1200, AS_OF, seed=11)
    async with clv_service(database_url) as svc:
        await svc.publish(events)
        await wait_until(lambda: _count(engine, "clv.purchase", len(events)), message="purchases applied")
        created = await svc.client.post("/v1/value/models/fits", json={"currency": "EUR", "as_of": AS_OF.isoformat()})
        assert created.json()["model"] == "auto"
        fit = await svc.poll(f"/v1/value/models/fits/{created.json()['id']}")
        assert fit["status"] == "succeeded" and fit["usable"], fit
        candidates = fit["selection"]["candidates"]
        assert {c["model"] for c in candidates} == {"bgnbd", "mbgnbd", "pareto_nbd"}
        usable = [c for c in candidates if c["usable"]]
        assert all(c["aic"] is not None and c["holdout_mean_absolute_error"] is not None for c in usable)
        best = min(usable, key=lambda c: c["holdout_mean_absolute_error"])
        assert fit["model"] == fit["selection"]["chosen"] == best["model"] == fit["transactions"]["model"]

        # What-if predictions from the fit; the model refuses NaN and negative inputs with a 422 naming them.
        url = f"/v1/value/models/fits/{fit['id']}/predictions"
        ok = await svc.client.post(
            url, json={"customers": [{"x": 0, "t_x": 0, "T": 30}, {"x": 4, "t_x": 20, "T": 30, "mean_spend": 40}]}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["model"] == fit["model"] and len(ok.json()["predictions"]) == 2
        for bad, word in (
            ({"x": -1, "t_x": 0, "T": 30}, "x"),
            ({"x": 2, "t_x": float("nan"), "T": 30}, "t_x"),
            ({"x": 2, "t_x": 40, "T": 30}, "t_x <= T"),
            ({"x": 2, "t_x": 5, "T": 30, "mean_spend": -3}, "mean spend"),
        ):
            refused = await svc.client.post(
                url, content=json.dumps({"customers": [bad]}), headers={"content-type": "application/json"}
            )
            assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
            assert word in refused.json()["detail"], refused.json()
        assert (
            await svc.client.post(
                f"/v1/value/models/fits/{uuid.uuid4()}/predictions", json={"customers": [{"x": 0, "t_x": 0, "T": 1}]}
            )
        ).status_code == 404

        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "current_months": 6})
        scored = await svc.poll(f"/v1/value/scorings/{run.json()['id']}")
        assert scored["status"] == "succeeded" and scored["fit_id"] == fit["id"], scored
        someone = events[0].customer_id
        model = (await svc.client.get(f"/v1/customers/{someone}/value")).json()["by_currency"][0]["model"]
        assert model["model"] == fit["model"] and model["model_version"] == f"{fit['model']}-v{fit['version']}"
        assert model["expected_purchases_months"] == 6 and model["horizon_months"] == 60
        assert float(model["retention_value"]) >= 0 and float(model["potential_value"]) >= 0
        # Every one-time buyer has something to develop; retention upside is its own figure.
        one_time_without_potential = await scalar(
            engine,
            """select count(*) from clv.customer_value v
            join clv.transaction_summary t using (customer_id, currency)
            where t.purchase_count = 1 and v.potential_value <= 0""",
        )
        assert one_time_without_potential == 0
