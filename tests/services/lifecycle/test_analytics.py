"""The SQL analytics against brute-force counts in Python over random stage histories."""

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bench.harness import percentile

STAGES = ["approach", "acquisition", "development", "retention", "loyalty"]
RANK = {s: i + 1 for i, s in enumerate(STAGES)} | {"churned": 0}
ACTIVE = {"development", "retention", "loyalty"}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def random_histories(seed: int, customers: int = 300) -> list[dict]:
    """Plausible paths: forward steps that may skip, churn, reactivation; times strictly increasing."""
    rng = random.Random(seed)
    rows = []
    for _ in range(customers):
        cid = uuid.uuid4()
        at = T0 + timedelta(days=rng.uniform(0, 500))
        stage = rng.choice(["approach", "approach", "acquisition", "development"])
        prev = None
        path = []
        for _ in range(rng.randint(1, 6)):
            path.append((prev, stage, at))
            prev = stage
            at += timedelta(days=rng.expovariate(1 / 40), seconds=1)
            if stage == "churned":
                stage = "retention"
            elif stage in ACTIVE and rng.random() < 0.3:
                stage = "churned"
            elif RANK[stage] < 5:
                stage = STAGES[min(4, RANK[stage] + rng.choice([0, 0, 1]))]
            else:
                stage = "churned"
        for i, (frm, st, entered) in enumerate(path):
            rows.append(
                {
                    "customer_id": cid,
                    "from_stage": frm,
                    "stage": st,
                    "entered_at": entered,
                    "left_at": path[i + 1][2] if i + 1 < len(path) else None,
                }
            )
    return rows


async def load(lc, rows: list[dict]) -> None:
    """Stage history rows as the derivation would write them, and the funnel rows kept from them."""
    from lifecycle.stages.repository import refresh_funnel_entries

    async with lc.runtime.session_factory() as session, session.begin():
        await session.execute(
            sa.text("""
            INSERT INTO lifecycle.stage_history (customer_id, from_stage, stage, entered_at, left_at, reason)
            SELECT *, 'test' FROM unnest(CAST(:c AS uuid[]), CAST(:f AS text[]), CAST(:s AS text[]),
                                         CAST(:e AS timestamptz[]), CAST(:l AS timestamptz[]))"""),
            {
                "c": [r["customer_id"] for r in rows],
                "f": [r["from_stage"] for r in rows],
                "s": [r["stage"] for r in rows],
                "e": [r["entered_at"] for r in rows],
                "l": [r["left_at"] for r in rows],
            },
        )
        await refresh_funnel_entries(session, list({r["customer_id"] for r in rows}))


def brute_funnel(rows: list[dict], start: datetime, end: datetime, by_cohort: bool) -> dict:
    """{cohort: {"customers": n, rank: (entered, skipped, converted to the next)}}, counted entry by entry."""
    by_customer: dict = {}
    for r in rows:
        if r["entered_at"] < end:
            by_customer.setdefault(r["customer_id"], []).append(r)
    out: dict = {}
    for entries in by_customer.values():
        first = min(e["entered_at"] for e in entries)
        if first < start:
            continue
        cohort = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0) if by_cohort else None
        first_in = {}
        for e in sorted(entries, key=lambda e: e["entered_at"]):
            first_in.setdefault(RANK[e["stage"]], e["entered_at"])
        counts = out.setdefault(cohort, Counter())
        counts["customers"] += 1
        for rank in range(1, 6):
            entered = rank in first_in
            skipped = not entered and any(r in first_in for r in range(rank + 1, 6))
            converted = entered and rank < 5 and rank + 1 in first_in and first_in[rank + 1] >= first_in[rank]
            counts[(rank, "entered")] += entered
            counts[(rank, "skipped")] += skipped
            counts[(rank, "converted")] += converted
    return out


@pytest.mark.parametrize("seed", [7, 8])
async def test_funnel_equals_brute_force(lc, seed):
    rows = random_histories(seed)
    await load(lc, rows)
    start, end = T0 + timedelta(days=100), T0 + timedelta(days=400)
    for by_cohort in (False, True):
        resp = await lc.client.get(
            "/v1/lifecycle/analytics/funnel", params={"from": start.isoformat(), "to": end.isoformat(), "by_cohort": by_cohort}
        )
        assert resp.status_code == 200, resp.text
        expected = brute_funnel(rows, start, end, by_cohort)
        got = {}
        for c in resp.json()["cohorts"]:
            cohort = datetime.fromisoformat(c["cohort"]) if c["cohort"] else None
            counts = Counter({"customers": c["customers"]})
            for i, s in enumerate(c["steps"], start=1):
                counts[(i, "entered")] += s["entered"]
                counts[(i, "skipped")] += s["skipped"]
                counts[(i, "converted")] += s["converted_to_next"] or 0
                assert s["conversion_to_next"] == (
                    pytest.approx(s["converted_to_next"] / s["entered"]) if i < 5 and s["entered"] else None
                )
            got[cohort] = +counts
        assert got == {k: +v for k, v in expected.items()}
        assert len(expected) > (3 if by_cohort else 0)
    # The histories skip stages (paths start in acquisition or development, steps may jump): this test must see it.
    overall = brute_funnel(rows, start, end, False)[None]
    assert overall[(1, "skipped")] > 0 and overall[(2, "skipped")] > 0


async def test_a_skipped_stage_is_not_counted_as_entered(lc):
    # Issue 14: a customer whose lifecycle begins in Development (first purchase, no lead) never was in Approach
    # or Acquisition; counting them there made the lead → MQL rate up.
    skipper, walker = uuid.uuid4(), uuid.uuid4()
    at = T0 + timedelta(days=10)
    rows = [
        {"customer_id": skipper, "from_stage": None, "stage": "development", "entered_at": at, "left_at": None},
        {"customer_id": walker, "from_stage": None, "stage": "approach", "entered_at": at, "left_at": at + timedelta(days=1)},
        {
            "customer_id": walker,
            "from_stage": "approach",
            "stage": "acquisition",
            "entered_at": at + timedelta(days=1),
            "left_at": at + timedelta(days=2),
        },
        {
            "customer_id": walker,
            "from_stage": "acquisition",
            "stage": "development",
            "entered_at": at + timedelta(days=2),
            "left_at": None,
        },
    ]
    await load(lc, rows)
    resp = await lc.client.get(
        "/v1/lifecycle/analytics/funnel", params={"from": T0.isoformat(), "to": (T0 + timedelta(days=100)).isoformat()}
    )
    [cohort] = resp.json()["cohorts"]
    steps = {s["stage"]: s for s in cohort["steps"]}
    assert cohort["customers"] == 2
    assert [steps[s]["entered"] for s in STAGES] == [1, 1, 2, 0, 0]
    assert [steps[s]["skipped"] for s in STAGES] == [1, 1, 0, 0, 0]
    assert steps["approach"]["conversion_to_next"] == 1.0, "the one lead became an MQL"
    assert steps["acquisition"]["converted_to_next"] == 1 and steps["development"]["converted_to_next"] == 0


async def test_time_in_stage_churn_and_distribution_equal_brute_force(lc):
    rows = random_histories(11)
    await load(lc, rows)
    start, end = T0 + timedelta(days=60), T0 + timedelta(days=365)
    params = {"from": start.isoformat(), "to": end.isoformat()}

    tis = (await lc.client.get("/v1/lifecycle/analytics/time-in-stage", params=params)).json()["stages"]
    for s in tis:
        durations = [
            (r["left_at"] - r["entered_at"]).total_seconds()
            for r in rows
            if r["stage"] == s["stage"] and start <= r["entered_at"] < end and r["left_at"]
        ]
        assert s["stays"] == len(durations)
        assert s["median_seconds"] == pytest.approx(percentile(durations, 50))
        assert s["p90_seconds"] == pytest.approx(percentile(durations, 90))
    assert {s["stage"] for s in tis} == {r["stage"] for r in rows if start <= r["entered_at"] < end and r["left_at"]}

    churn = (await lc.client.get("/v1/lifecycle/analytics/churn", params=params)).json()

    def during(r: dict) -> bool:
        return start <= r["entered_at"] < end

    def at_start(r: dict) -> bool:
        return r["entered_at"] <= start and (r["left_at"] is None or r["left_at"] > start)

    assert churn["active_at_start"] == sum(1 for r in rows if r["stage"] in ACTIVE and at_start(r))
    assert churn["became_active"] == len(
        {r["customer_id"] for r in rows if r["stage"] in ACTIVE and during(r) and r["from_stage"] not in ACTIVE}
    )
    assert churn["churned"] == len({r["customer_id"] for r in rows if r["stage"] == "churned" and during(r)})
    assert churn["churned_at_start"] == sum(1 for r in rows if r["stage"] == "churned" and at_start(r))
    assert churn["reactivated"] == len(
        {r["customer_id"] for r in rows if r["from_stage"] == "churned" and r["stage"] in ACTIVE and during(r)}
    )
    assert churn["churn_rate"] == pytest.approx(churn["churned"] / (churn["active_at_start"] + churn["became_active"]))

    dist = (await lc.client.get("/v1/lifecycle/analytics/distribution", params={**params, "interval": "month"})).json()["points"]
    assert len(dist) >= 10
    for point in dist[::3]:
        at = datetime.fromisoformat(point["at"])
        expected = Counter(r["stage"] for r in rows if r["entered_at"] <= at and (r["left_at"] is None or r["left_at"] > at))
        assert point["counts"] == dict(expected)

    bad = await lc.client.get("/v1/lifecycle/analytics/churn", params={"from": end.isoformat(), "to": start.isoformat()})
    assert bad.status_code == 422
    too_many = await lc.client.get(
        "/v1/lifecycle/analytics/distribution", params={"from": "1990-01-01T00:00:00Z", "interval": "day"}
    )
    assert too_many.status_code == 422
