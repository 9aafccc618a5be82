"""`POST /v1/events` group commit on a real Postgres: concurrent requests share one transaction, each keeps its
own per-item results, and a request whose events make the group's transaction fail costs the others nothing."""

import asyncio

import pytest
import sqlalchemy as sa

from tests.services.conftest import serving
from tests.services.interaction.events import order
from tests.support import scalar

import interaction.app
from interaction.app import create_app
from interaction.settings import InteractionSettings


@pytest.fixture
async def app(database_url):
    # A wide window, so that requests sent together certainly form one group whatever the machine's speed.
    settings = InteractionSettings(
        database_url=database_url, transport="inprocess", run_workers=False, ingest_group_max_wait_s=0.2
    )
    return create_app(settings)


async def test_concurrent_requests_share_a_transaction_and_keep_their_own_results(app, engine):
    shared_event = order("G-dup", "O-dup")
    bodies = [[order(f"G-{i}", f"O-{i}")] for i in range(12)]
    bodies.append([shared_event])  # the same event in two requests of one group: accepted once, then a duplicate
    bodies.append([shared_event, order("G-bad", "O-bad", amount="-5")])  # a rejected item: 422 for this one only
    async with serving(app) as client:
        responses = await asyncio.gather(*(client.post("/v1/events", json=b) for b in bodies))

    group = app.state.ingest_group
    assert group.largest > 1, "the concurrent requests were not grouped"
    assert group.groups < len(bodies)
    for resp in responses[:12]:
        assert resp.status_code == 200, resp.text
        assert [r["status"] for r in resp.json()["results"]] == ["accepted"]
    # The shared event is accepted by whichever of the two requests reached the group first (concurrent requests
    # have no order), and reported a duplicate to the other.
    alone, with_bad = responses[12].json(), responses[13].json()
    assert responses[12].status_code == 200
    assert responses[13].status_code == 422
    assert responses[13].headers["content-type"].startswith("application/problem+json")
    shared_results = sorted([alone["results"][0]["status"], with_bad["results"][0]["status"]])
    assert shared_results == ["accepted", "duplicate"]
    assert with_bad["results"][1]["status"] == "rejected"
    assert with_bad["results"][1]["index"] == 1 and with_bad["results"][1]["reason"]
    assert await scalar(engine, "select count(*) from interaction.purchase") == 13


async def test_a_poison_request_fails_alone_and_the_others_of_its_group_are_stored(app, engine, monkeypatch):
    store = interaction.app.store_http_batches

    async def store_failing_on_poison(session, outbox, batches):
        # A poison event: one whose write the database refuses (here a real error raised by Postgres), as a bug
        # or a constraint would. It fails whichever transaction holds it.
        if any(e.envelope.id == "poison" for b in batches for _, e in b.valid):
            await session.execute(sa.text("SELECT 1 / 0"))
        return await store(session, outbox, batches)

    monkeypatch.setattr(interaction.app, "store_http_batches", store_failing_on_poison)
    bodies = [[order(f"P-{i}", f"O-{i}")] for i in range(8)]
    bodies.insert(3, [order("P-poison", "O-poison", event_id="poison")])
    async with serving(app) as client:
        outcomes = await asyncio.gather(*(client.post("/v1/events", json=b) for b in bodies), return_exceptions=True)

    group = app.state.ingest_group
    assert group.split == 1, "the poison request's group should have been retried one request per transaction"
    poisoned = outcomes.pop(3)
    # The in-process client re-raises the app's error; over HTTP it is a 500 problem+json.
    assert isinstance(poisoned, Exception) or poisoned.status_code == 500
    for resp in outcomes:
        assert not isinstance(resp, Exception), resp
        assert resp.status_code == 200, resp.text
        assert resp.json()["accepted"] == 1
    assert await scalar(engine, "select count(*) from interaction.purchase") == 8
    assert await scalar(engine, "select count(*) from interaction.purchase where order_id = 'O-poison'") == 0
    # Its event was not claimed either: resent once the cause is fixed, it is accepted, not a duplicate.
    monkeypatch.setattr(interaction.app, "store_http_batches", store)
    async with serving(app) as client:
        resent = await client.post("/v1/events", json=bodies[3])
    assert resent.status_code == 200 and resent.json()["accepted"] == 1, resent.text


async def test_group_commit_off_gives_one_transaction_per_request(database_url, engine):
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False, ingest_group_commit=False)
    app = create_app(settings)
    assert app.state.ingest_group is None
    async with serving(app) as client:
        responses = await asyncio.gather(*(client.post("/v1/events", json=[order(f"N-{i}", f"O-{i}")]) for i in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert await scalar(engine, "select count(*) from interaction.purchase") == 5
