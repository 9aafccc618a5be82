"""Rule sets are versions: a dry run predicts the moves, saving applies them, any version replays."""

import uuid

from tests.services.lifecycle.conftest import days_ago, purchase
from tests.support import wait_until


async def finished(lc, run: dict) -> dict:
    """The run once it has finished (the replay is a job: 202, then poll)."""

    async def done() -> bool:
        nonlocal run
        run = (await lc.client.get(f"/v1/lifecycle/rules/runs/{run['id']}")).json()
        return run["status"] not in ("queued", "running")

    await wait_until(done, timeout=30, interval=0.05, message="the replay run finished")
    return run


async def test_dry_run_then_save_then_replay(lc):
    repeaters = [uuid.uuid4() for _ in range(3)]
    slow = [uuid.uuid4() for _ in range(2)]
    await lc.apply(
        [e for c in repeaters for e in (purchase(c, days_ago(40)), purchase(c, days_ago(30)))]
        + [e for c in slow for e in (purchase(c, days_ago(200)), purchase(c, days_ago(100)))]
    )
    active = (await lc.client.get("/v1/lifecycle/rules")).json()
    assert active["version"] == 1 and active["active"] and active["rule_order"][0] == "manual"
    stages = {c: (await lc.view(c))["stage"] for c in repeaters + slow}
    assert set(stages.values()) == {"retention"}

    candidate = {**active["parameters"], "repeat_window_days": 30}
    dry = await lc.client.post("/v1/lifecycle/rules/dry-run", json={"parameters": candidate})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "evaluated": 5,
        "moved": 2,
        "moves": [{"from_stage": "retention", "to_stage": "development", "customers": 2}],
    }
    assert {c: (await lc.view(c))["stage"] for c in repeaters + slow} == stages, "a dry run changes nothing"

    bad = await lc.client.post("/v1/lifecycle/rules/dry-run", json={"parameters": {**candidate, "inactivity_days": 0}})
    assert bad.status_code == 422

    saved = await lc.client.put(
        "/v1/lifecycle/rules", json={"parameters": candidate, "description": "tighter", "created_by": "ada"}
    )
    assert saved.status_code == 202, saved.text
    assert saved.json()["rule_set"]["version"] == 2 and saved.json()["run"]["customers_total"] == 5
    run = await finished(lc, saved.json()["run"])
    assert (run["status"], run["evaluated"], run["moved"]) == ("succeeded", 5, 2)
    assert run["moves"] == dry.json()["moves"], "the dry run predicted the moves"
    assert (await lc.view(slow[0]))["stage"] == "development"
    assert (await lc.view(slow[0]))["rule_set_version"] == 2
    assert (await lc.view(repeaters[0]))["stage"] == "retention"

    versions = (await lc.client.get("/v1/lifecycle/rules/versions", params={"limit": 1})).json()
    assert [v["version"] for v in versions["items"]] == [2] and versions["next_cursor"]
    older = (await lc.client.get("/v1/lifecycle/rules/versions", params={"cursor": versions["next_cursor"]})).json()
    assert [(v["version"], v["active"]) for v in older["items"]] == [(1, False)]
    assert (await lc.client.get("/v1/lifecycle/rules/versions/1")).json()["parameters"]["repeat_window_days"] == 365
    assert (await lc.client.get("/v1/lifecycle/rules/versions/99")).status_code == 404
    assert (await lc.client.get("/v1/lifecycle/rules/versions", params={"cursor": "x"})).status_code == 422

    predicted = (await lc.client.post("/v1/lifecycle/rules/versions/1/dry-run")).json()
    replay = await lc.client.post("/v1/lifecycle/rules/versions/1/replay")
    assert replay.status_code == 202, replay.text
    run = await finished(lc, replay.json()["run"])
    assert (run["evaluated"], run["moved"], run["moves"]) == (predicted["evaluated"], predicted["moved"], predicted["moves"])
    runs = (await lc.client.get("/v1/lifecycle/rules/runs")).json()["items"]
    assert [r["rule_set_version"] for r in runs] == [1, 2]
    assert (await lc.client.get(f"/v1/lifecycle/rules/runs/{uuid.uuid4()}")).status_code == 404
    assert predicted["moves"] == [{"from_stage": "development", "to_stage": "retention", "customers": 2}]
    assert (await lc.client.get("/v1/lifecycle/rules")).json()["version"] == 1
    assert {c: (await lc.view(c))["stage"] for c in repeaters + slow} == stages
    # Each move published a stage.changed: 10 initial transitions, 2 back, 2 forth.
    [(n,)] = await lc.sql("SELECT count(*) FROM lifecycle.outbox WHERE convert_from(payload, 'UTF8') LIKE '%stage.changed%'")
    assert n >= 3 * 2 + 2 * 2 + 2 + 2


async def test_a_newer_run_supersedes_and_an_interrupted_one_resumes(lc):
    from lifecycle.rules import repository as rules_repository

    await lc.apply([purchase(uuid.uuid4(), days_ago(5))])
    async with lc.runtime.session_factory() as session, session.begin():
        older = await rules_repository.create_run(session, 1)
    async with lc.runtime.session_factory() as session, session.begin():
        newer = await rules_repository.create_run(session, 1)  # as if the process died before running either
    older_run = (await lc.client.get(f"/v1/lifecycle/rules/runs/{older}")).json()
    assert older_run["status"] == "superseded"

    replays = lc.client._transport.app.state.replays
    await replays.resume()  # what the service does at start-up
    await replays.wait()
    run = (await lc.client.get(f"/v1/lifecycle/rules/runs/{newer}")).json()
    assert (run["status"], run["evaluated"], run["moved"]) == ("succeeded", 1, 0)
