"""The lifecycle consumer on the real broker: events from two producers' topics, out of order and redelivered."""

import uuid

import orjson
import pytest

from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS, LIFECYCLE_EVENTS
from tests.services.conftest import serving
from tests.services.lifecycle.conftest import days_ago, feedback, lead, purchase, value
from tests.support import produce_events, read_topic, wait_until

import lifecycle.app
from lifecycle.settings import LifecycleSettings

pytestmark = pytest.mark.kafka


async def test_out_of_order_events_across_topics_give_the_sorted_stage(database_url, kafka_bootstrap, topic_prefix):
    cid = uuid.uuid4()
    first, second, third = purchase(cid, days_ago(30)), purchase(cid, days_ago(20)), purchase(cid, days_ago(10))
    # Newest first, a redelivery, and the value update on the other topic.
    await produce_events(
        kafka_bootstrap,
        topic_prefix + INTERACTION_EVENTS,
        [third, feedback(cid, days_ago(5), nps=3), second, third, lead(cid, days_ago(60))],
    )
    await produce_events(kafka_bootstrap, topic_prefix + CLV_EVENTS, [value(cid, days_ago(4), "platinum", 0.95)])

    settings = LifecycleSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        relay_poll_interval_s=0.2,
        sweep_interval_s=0,
    )
    async with serving(lifecycle.app.create_app(settings)) as client:

        async def stage_is(expected: str) -> bool:
            resp = await client.get(f"/v1/customers/{cid}/lifecycle")
            return resp.status_code == 200 and resp.json()["stage"] == expected

        await wait_until(lambda: stage_is("retention"), timeout=60, message="retention from two purchases")
        # The oldest purchase arrives last: now three within the window, plus a platinum tier alive → Loyalty.
        await produce_events(kafka_bootstrap, topic_prefix + INTERACTION_EVENTS, [first])
        await wait_until(lambda: stage_is("loyalty"), timeout=60, message="loyalty once the late purchase lands")
        view = (await client.get(f"/v1/customers/{cid}/lifecycle")).json()

    assert [h["stage"] for h in view["history"]] == ["approach", "development", "retention", "loyalty"]
    assert view["history"][1]["entered_at"] == first.data["occurred_at"].replace("+00:00", "Z")
    assert view["order_count"] == 3
    published = await read_topic(kafka_bootstrap, topic_prefix + LIFECYCLE_EVENTS, expected=4)
    to_stages = [orjson.loads(r.value)["data"]["to_stage"] for r in published]
    assert to_stages[-1] == "loyalty" and "retention" in to_stages
    assert all(r.key == str(cid).encode() for r in published)
