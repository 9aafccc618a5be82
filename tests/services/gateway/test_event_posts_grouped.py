"""Concurrent event posts of one caller reach the interaction service as one batch (gateway/proxy/event_posts.py),
and each client still gets the answer for its own events only."""

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from shared.db import make_engine
from tests.services.gateway.conftest import Stack, create_key, gateway_stack


def order(run: str, n: int, source: str = "shop-eu") -> dict:
    return {
        "specversion": "1.0",
        "id": f"{run}-{n}",
        "source": source,
        "type": "order.completed",
        "subject": f"C-{run}-{n}",
        "time": "2026-11-01T10:00:00Z",
        "data": {"order_id": f"{run}-{n}", "amount": "10.00", "currency": "EUR"},
    }


def bad(run: str, n: int) -> dict:
    return {**order(run, n), "data": {"order_id": f"{run}-{n}", "amount": "ten", "currency": "EUR"}}


async def post_all(stack: Stack, key: str, posts: list[list[dict]]) -> list:
    async with stack.client(key) as client:
        return await asyncio.gather(*(client.post("/v1/events", json=p) for p in posts))


@pytest.fixture
async def grouping_stack(database_url: str):
    # A long wait, so the posts below surely meet in groups.
    async with gateway_stack(database_url, services=("interaction",), event_posts_group_wait_s=0.05) as s:
        yield s


async def test_each_post_gets_its_own_answer_from_a_shared_batch(grouping_stack: Stack) -> None:
    stack, run = grouping_stack, uuid.uuid4().hex[:8]
    key = await create_key(stack, "partner", partner="shop-eu")
    posts = [[order(run, i)] for i in range(20)]
    posts.append([order(run, 100), bad(run, 101), order(run, 102)])  # one rejected, in the middle
    posts.append([order(run, 200), order(run, 200)])  # the same event twice in one post
    posts.append([order(run, 300)])
    posts.append([order(run, 300)])  # the same event in two posts: one accepts it, the other is a duplicate
    answers = await post_all(stack, key, posts)

    assert stack.app.state.event_posts.largest > 1  # they did share batches
    for i in range(20):
        assert answers[i].status_code == 200, answers[i].text
        assert answers[i].json() == {
            "accepted": 1,
            "duplicates": 0,
            "rejected": 0,
            "results": [{"index": 0, "status": "accepted", "id": f"{run}-{i}", "reason": None}],
        }
    mixed = answers[20]
    assert mixed.status_code == 422, mixed.text
    assert mixed.headers["content-type"].startswith("application/problem+json")
    problem = mixed.json()
    assert (problem["accepted"], problem["duplicates"], problem["rejected"]) == (2, 0, 1)
    assert [(r["index"], r["status"], r["id"]) for r in problem["results"]] == [
        (0, "accepted", f"{run}-100"),
        (1, "rejected", f"{run}-101"),
        (2, "accepted", f"{run}-102"),
    ]
    assert problem["detail"].startswith("1 of 3 rejected; first: item 1: ")
    assert problem["type"].endswith("/events-rejected") and problem["instance"] == "/v1/events"
    twice = answers[21].json()
    assert answers[21].status_code == 200
    assert [r["status"] for r in twice["results"]] == ["accepted", "duplicate"]
    assert sorted(a.json()["results"][0]["status"] for a in answers[22:]) == ["accepted", "duplicate"]

    engine = make_engine(stack.database_url)
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(
                sa.text("SELECT count(*) FROM interaction.inbox WHERE source = 'shop-eu' AND event_id LIKE :run"),
                {"run": f"{run}-%"},
            )
    finally:
        await engine.dispose()
    assert stored == 24  # each valid event once: 20 + 2 + 1 + 1


async def test_two_partners_posting_at_once_are_never_sent_together(grouping_stack: Stack) -> None:
    stack, run = grouping_stack, uuid.uuid4().hex[:8]
    eu, us = await create_key(stack, "partner", partner="shop-eu"), await create_key(stack, "partner", partner="shop-us")
    answers = await asyncio.gather(
        post_all(stack, eu, [[order(run, i)] for i in range(10)]),
        post_all(stack, us, [[order(run, i, source="shop-us")] for i in range(10, 20)]),
    )
    assert all(a.status_code == 200 and a.json()["accepted"] == 1 for posts in answers for a in posts)
    # One group per caller: each partner's events reach the service signed for that partner only.
    assert {c.partner_id for c in stack.app.state.event_posts.callers} == {"shop-eu", "shop-us"}


async def test_an_answer_that_cannot_be_cut_sends_each_post_alone(database_url: str) -> None:
    """The service below the default limits answers the joined batch 413: each post is then sent on its own."""
    async with gateway_stack(
        database_url, services=("interaction",), service_settings={"ingest_max_events": 2}, event_posts_group_wait_s=0.05
    ) as stack:
        run = uuid.uuid4().hex[:8]
        key = await create_key(stack, "partner", partner="shop-eu")
        answers = await post_all(stack, key, [[order(run, i)] for i in range(6)] + [[order(run, i) for i in range(6, 9)]])
    assert [a.status_code for a in answers] == [200] * 6 + [413]
    assert all(a.json()["results"][0]["id"] == f"{run}-{i}" for i, a in enumerate(answers[:6]))
