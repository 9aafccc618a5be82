"""Propositions on a real Postgres: catalogue, next-best under limits, deliveries with a holdout, performance, gap."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from shared.contracts import lifecycle, segmentation
from shared.contracts.interaction import FeedbackRecorded
from shared.contracts.lifecycle import Stage, StageChanged
from shared.contracts.segmentation import SegmentKind, SegmentMembershipChanged
from tests.services.clv.support import clv_service, purchase, simulated_purchases
from tests.support import scalar, wait_until

from clv.propositions.service import in_holdout

NOW = datetime.now(UTC)


def membership(customer_id, key: str, change: str = "entered", version: int | None = None) -> SegmentMembershipChanged:
    return SegmentMembershipChanged(
        customer_id=customer_id,
        segment_id=uuid.uuid4(),
        segment_key=key,
        segment_name=key,
        kind=SegmentKind.RFM,
        change=change,
        changed_at=NOW,
        version=version,
    )


async def _outcome_is_write_once_and_corrected_with_an_audit(svc, first: dict) -> None:
    """An outcome was overwritten silently (accepted → declined, 200): now write-once, corrected only explicitly."""
    delivery_id = first["id"]
    url = f"/v1/propositions/deliveries/{delivery_id}/outcome"
    assert first["outcome"] == "accepted"
    same = await svc.client.post(url, json={"outcome": "accepted"})
    assert same.status_code == 200 and same.json() == first, "the same outcome again is idempotent"
    other = await svc.client.post(url, json={"outcome": "declined"})
    assert other.status_code == 409 and other.json()["type"].endswith("outcome-conflict")
    assert "corrections" in other.json()["detail"]
    assert (await svc.client.get(f"/v1/propositions/deliveries/{delivery_id}")).json() == first, "nothing changed"

    corrections = f"{url}/corrections"
    assert (await svc.client.post(corrections, json={"outcome": "declined"})).status_code == 422, "a reason is needed"
    lone = await svc.client.post(
        corrections, content=r'{"outcome": "declined", "reason": "\ud800"}', headers={"content-type": "application/json"}
    )
    assert lone.status_code == 422, "a reason Postgres cannot store is refused, not a 500"
    assert (await svc.client.post(corrections, json={"outcome": "accepted", "reason": "x"})).status_code == 409
    fixed = await svc.client.post(corrections, json={"outcome": "declined", "reason": "clicked by mistake, said the agent"})
    assert fixed.status_code == 201, fixed.text
    audit = fixed.json()
    assert (audit["from_outcome"], audit["to_outcome"]) == ("accepted", "declined")
    assert audit["reason"] == "clicked by mistake, said the agent" and audit["corrected_by"]
    now = (await svc.client.get(f"/v1/propositions/deliveries/{delivery_id}")).json()
    assert now["outcome"] == "declined" and now["corrections"] == 1
    listed = (await svc.client.get(corrections)).json()
    assert listed == {"items": [audit], "next_cursor": None}
    assert (
        await svc.client.post(
            f"/v1/propositions/deliveries/{uuid.uuid4()}/outcome/corrections", json={"outcome": "declined", "reason": "x"}
        )
    ).status_code == 404
    # Put back as it was, audited too, so the rest of the scenario sees the accepted outcome.
    back = await svc.client.post(corrections, json={"outcome": "accepted", "reason": "the customer did accept"})
    assert back.status_code == 201
    assert [c["to_outcome"] for c in (await svc.client.get(corrections, params={"limit": 1})).json()["items"]] == ["declined"]


async def test_catalogue_next_best_deliveries_performance_and_gap(database_url):
    events = simulated_purchases(300, NOW - timedelta(days=1), seed=5)
    async with clv_service(database_url) as svc:
        engine = svc.app.state.runtime.engine
        await svc.publish(events)
        await wait_until(lambda: _purchases(engine, len(events)), message="purchases applied")
        fit = await svc.client.post("/v1/value/models/fits", json={"currency": "EUR"})
        assert (await svc.poll(f"/v1/value/models/fits/{fit.json()['id']}"))["status"] == "succeeded"
        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR"})
        assert (await svc.poll(f"/v1/value/scorings/{run.json()['id']}"))["status"] == "succeeded"

        customers = [uuid.UUID(str(c)) for c in (await _top_customers(engine))]
        star, other = customers[0], customers[-1]
        await svc.publish(
            [
                membership(star, "rfm:champions", version=1),
                membership(star, "rfm:loyal", version=2),
                membership(star, "rfm:loyal", "left", version=3),
            ],
            source=segmentation.SOURCE,
        )
        await svc.publish(
            [
                StageChanged(
                    customer_id=star, from_stage=None, to_stage=Stage.RETENTION, changed_at=NOW - timedelta(days=2), reason="x"
                ),
                StageChanged(
                    customer_id=star,
                    from_stage=Stage.RETENTION,
                    to_stage=Stage.LOYALTY,
                    changed_at=NOW - timedelta(days=1),
                    reason="y",
                ),
            ],
            source=lifecycle.SOURCE,
        )
        await wait_until(lambda: _stage(engine, star, "loyalty"), message="targeting facts applied")
        members = "select string_agg(segment_key, ',') from clv.segment_membership where member"
        assert await scalar(engine, members) == "rfm:champions"

        cheap = {
            "name": "Express shipping",
            "kind": "offer",
            "currency": "EUR",
            "cost": "1.00",
            "expected_uplift": 0.05,
            "holdout_fraction": 0.0,
            "max_contacts": 1,
            "contact_window_days": 30,
        }
        vip = {
            "name": "VIP service",
            "kind": "service_level",
            "currency": "EUR",
            "cost": "2.00",
            "expected_uplift": 0.5,
            "target_segments": ["rfm:champions"],
            "target_stages": ["loyalty"],
            "budget": "2.00",
            "holdout_fraction": 0.0,
        }
        huge = {"name": "Concierge", "kind": "bundle", "currency": "EUR", "cost": "1000000", "expected_uplift": 0.1}
        ids = {}
        for body in (cheap, vip, huge):
            r = await svc.client.post("/v1/propositions", json=body)
            assert r.status_code == 201, r.text
            ids[body["name"]] = r.json()["id"]
        assert (await svc.client.post("/v1/propositions", json={**cheap, "kind": "coupon"})).status_code == 422
        page = (await svc.client.get("/v1/propositions", params={"limit": 2})).json()
        rest = (await svc.client.get("/v1/propositions", params={"limit": 2, "cursor": page["next_cursor"]})).json()
        assert len(page["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None

        best = (await svc.client.get(f"/v1/customers/{star}/propositions/next-best", params={"currency": "EUR"})).json()
        assert best["best"]["name"] == "VIP service", best
        assert any("rfm:champions" in r for r in best["best"]["reasons"])
        concierge = next(c for c in best["candidates"] if c["name"] == "Concierge")
        assert not concierge["eligible"] and "no positive expected gain" in concierge["reasons"]
        theirs = (await svc.client.get(f"/v1/customers/{other}/propositions/next-best", params={"currency": "EUR"})).json()
        vip_for_other = next(c for c in theirs["candidates"] if c["name"] == "VIP service")
        assert not vip_for_other["eligible"] and any("segments" in r for r in vip_for_other["reasons"])
        unknown = await svc.client.get(f"/v1/customers/{uuid.uuid4()}/propositions/next-best", params={"currency": "EUR"})
        assert unknown.status_code == 404

        delivered = await svc.client.post(
            f"/v1/customers/{star}/propositions/deliveries", json={"proposition_id": ids["VIP service"], "channel": "email"}
        )
        assert delivered.status_code == 201 and delivered.json()["group"] == "treatment"
        # The budget (2.00) is now spent: the next-best moves on, and a second delivery is refused with a reason.
        again = await svc.client.post(
            f"/v1/customers/{star}/propositions/deliveries", json={"proposition_id": ids["VIP service"], "channel": "email"}
        )
        assert again.status_code == 409 and "budget" in again.json()["detail"]
        best = (await svc.client.get(f"/v1/customers/{star}/propositions/next-best", params={"currency": "EUR"})).json()
        assert best["best"]["name"] == "Express shipping"
        # Contact-frequency limit: one per 30 days.
        first = await svc.client.post(
            f"/v1/customers/{star}/propositions/deliveries", json={"proposition_id": ids["Express shipping"], "channel": "app"}
        )
        assert first.status_code == 201
        second = await svc.client.post(
            f"/v1/customers/{star}/propositions/deliveries", json={"proposition_id": ids["Express shipping"], "channel": "app"}
        )
        assert second.status_code == 409 and "limit 1" in second.json()["detail"]

        mine = (await svc.client.get(f"/v1/customers/{star}/propositions/deliveries", params={"limit": 1})).json()
        assert mine["items"][0]["id"] == first.json()["id"], "newest first"
        older = (
            await svc.client.get(
                f"/v1/customers/{star}/propositions/deliveries", params={"limit": 1, "cursor": mine["next_cursor"]}
            )
        ).json()
        assert older["items"][0]["id"] == delivered.json()["id"] and older["next_cursor"] is None
        outcome = await svc.client.post(
            f"/v1/propositions/deliveries/{delivered.json()['id']}/outcome", json={"outcome": "accepted"}
        )
        assert outcome.status_code == 200 and outcome.json()["outcome"] == "accepted"
        assert (
            await svc.client.post(f"/v1/propositions/deliveries/{uuid.uuid4()}/outcome", json={"outcome": "accepted"})
        ).status_code == 404
        await _outcome_is_write_once_and_corrected_with_an_audit(svc, outcome.json())

        # Performance against a holdout: a proposition that holds out about half, delivered to every customer.
        trial = await svc.client.post(
            "/v1/propositions",
            json={
                "name": "Trial",
                "kind": "offer",
                "currency": "EUR",
                "cost": "0.01",
                "expected_uplift": 1.0,
                "holdout_fraction": 0.5,
            },
        )
        trial_id = uuid.UUID(trial.json()["id"])
        groups = {"treatment": [], "holdout": []}
        for c in customers:
            r = await svc.client.post(
                f"/v1/customers/{c}/propositions/deliveries", json={"proposition_id": str(trial_id), "channel": "email"}
            )
            if r.status_code == 201:
                groups[r.json()["group"]].append(c)
                assert (r.json()["group"] == "holdout") == in_holdout(trial_id, c, 0.5)
        assert groups["treatment"] and groups["holdout"]
        later = NOW + timedelta(days=2)
        await svc.publish(
            [purchase(c, "50.00", later) for c in groups["treatment"]] + [purchase(c, "10.00", later) for c in groups["holdout"]]
        )
        await wait_until(lambda: _purchases(engine, len(events) + len(customers)), message="later purchases")
        perf = (await svc.client.get(f"/v1/propositions/{trial_id}/performance")).json()
        assert perf["treated"] == len(groups["treatment"]) and perf["holdout"] == len(groups["holdout"])
        assert Decimal(perf["revenue_per_treated"]) == Decimal("50.0000")
        assert Decimal(perf["revenue_per_holdout"]) == Decimal("10.0000")
        assert Decimal(perf["incremental_revenue"]) == 40 * len(groups["treatment"])
        assert perf["pending"] == len(groups["treatment"])

        # Value gap from feedback, per segment and per proposition.
        await svc.publish(
            [
                FeedbackRecorded(
                    customer_id=star,
                    feedback_id=uuid.uuid4(),
                    source="survey",
                    perceived_value=4,
                    expected_value=8,
                    proposition_id=ids["VIP service"],
                    occurred_at=NOW,
                ),
                FeedbackRecorded(
                    customer_id=star,
                    feedback_id=uuid.uuid4(),
                    source="survey",
                    perceived_value=9,
                    expected_value=7,
                    proposition_id=ids["VIP service"],
                    occurred_at=NOW,
                ),
            ]
        )
        await wait_until(lambda: _feedback(engine, 2), message="feedback applied")
        gap = (await svc.client.get("/v1/value/gap", params={"group_by": "proposition", "cost_per_point": "2.5"})).json()
        row = gap["rows"][0]
        assert row["group"] == ids["VIP service"] and row["responses"] == 2
        assert row["mean_gap"] == 1.0 and row["gap_points"] == 4.0 and Decimal(row["cost_to_close"]) == 10
        by_segment = (await svc.client.get("/v1/value/gap")).json()
        assert [r["group"] for r in by_segment["rows"]] == ["rfm:champions"]

        assert (await svc.client.delete(f"/v1/propositions/{ids['Concierge']}")).status_code == 204
        assert (await svc.client.get(f"/v1/propositions/{ids['Concierge']}")).json()["active"] is False
        patched = await svc.client.patch(f"/v1/propositions/{ids['Express shipping']}", json={"max_contacts": 5})
        assert patched.status_code == 200 and patched.json()["max_contacts"] == 5
        assert (await svc.client.patch(f"/v1/propositions/{uuid.uuid4()}", json={"active": True})).status_code == 404
        delivered_events = await scalar(
            engine, "select count(*) from clv.outbox where convert_from(payload, 'UTF8') like '%proposition.delivered%'"
        )
        assert delivered_events == 2 + len(groups["treatment"])


async def _purchases(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from clv.purchase") == n


async def _feedback(engine, n: int) -> bool:
    return await scalar(engine, "select count(*) from clv.feedback") == n


async def _stage(engine, customer_id, stage: str) -> bool:
    return await scalar(engine, "select stage from clv.customer_stage where customer_id = :c", c=customer_id) == stage


async def _top_customers(engine) -> list:
    import sqlalchemy as sa

    async with engine.connect() as conn:
        return list((await conn.execute(sa.text("select customer_id from clv.customer_value order by clv desc"))).scalars())


async def test_bad_input_is_a_problem_document_not_a_500(database_url):
    async with clv_service(database_url) as svc:
        created = await svc.client.post(
            "/v1/propositions", json={"name": "X", "kind": "offer", "currency": "EUR", "cost": "1", "expected_uplift": 0.1}
        )
        pid = created.json()["id"]
        for body in ({"target_tiers": None}, {"name": None}, {"active": None}):
            r = await svc.client.patch(f"/v1/propositions/{pid}", json=body)
            assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
        bad = await svc.client.get(f"/v1/customers/{uuid.uuid4()}/propositions/deliveries", params={"cursor": "WzFd"})
        assert bad.status_code == 422
        for query in ({"cursor": "bm9wZQ=="}, {"cursor": "%%%"}, {"limit": 0}, {"kind": "coupon"}):
            r = await svc.client.get("/v1/propositions", params=query)
            assert r.status_code == 422, (query, r.text)
        r = await svc.client.post(
            "/v1/value/models/fits", json={"currency": "EUR", "as_of": "0001-01-01T00:00:00Z", "holdout_days": 10}
        )
        assert r.status_code == 422
        r = await svc.client.post(
            f"/v1/customers/{uuid.uuid4()}/propositions/deliveries", json={"proposition_id": pid, "channel": "email"}
        )
        assert r.status_code == 409 and "not scored" in r.json()["detail"]
        assert (await svc.client.get(f"/v1/propositions/{uuid.uuid4()}/performance")).status_code == 404
        assert (await svc.client.get("/v1/value/gap", params={"group_by": "nope"})).status_code == 422


async def test_development_and_win_back_gains_use_potential_and_retention_value(database_url):
    from decimal import Decimal

    events = simulated_purchases(300, NOW - timedelta(days=1), seed=6)
    async with clv_service(database_url) as svc:
        engine = svc.app.state.runtime.engine
        await svc.publish(events)
        await wait_until(lambda: _purchases(engine, len(events)), message="purchases applied")
        fit = await svc.client.post("/v1/value/models/fits", json={"currency": "EUR"})
        assert (await svc.poll(f"/v1/value/models/fits/{fit.json()['id']}"))["status"] == "succeeded"
        run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR"})
        assert (await svc.poll(f"/v1/value/scorings/{run.json()['id']}"))["status"] == "succeeded"
        bodies = {
            basis: {
                "name": f"{basis} offer",
                "kind": "offer",
                "currency": "EUR",
                "cost": "0.50",
                "expected_uplift": 0.2,
                "value_basis": basis,
                "holdout_fraction": 0.0,
            }
            for basis in ("clv", "potential", "retention")
        }
        for body in bodies.values():
            created = await svc.client.post("/v1/propositions", json=body)
            assert created.status_code == 201 and created.json()["value_basis"] == body["value_basis"], created.text
        someone = (await _top_customers(engine))[0]
        value = (await svc.client.get(f"/v1/customers/{someone}/value")).json()["by_currency"][0]["model"]
        best = (await svc.client.get(f"/v1/customers/{someone}/propositions/next-best", params={"currency": "EUR"})).json()
        gains = {c["name"].split()[0]: Decimal(c["expected_gain"]) for c in best["candidates"]}
        for basis, field in (("clv", "clv"), ("potential", "potential_value"), ("retention", "retention_value")):
            expected = (Decimal("0.2") * Decimal(value[field]) - Decimal("0.50")).quantize(Decimal("0.0001"))
            assert gains[basis] == expected, (basis, gains, value)
        win_back = next(c for c in best["candidates"] if c["name"] == "retention offer")
        assert any("retention value" in r for r in win_back["reasons"])
        bad = await svc.client.post("/v1/propositions", json={**bodies["clv"], "value_basis": "wallet"})
        assert bad.status_code == 422
