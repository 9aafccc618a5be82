"""On the real broker: purchases consumed from Kafka keep a rule segment current, and the membership change
goes out through the outbox relay to `segmentation.events` as a valid CloudEvent."""

import uuid

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import SOURCE
from shared.contracts.segmentation import SegmentMembershipChanged
from shared.contracts.topics import INTERACTION_EVENTS, SEGMENTATION_EVENTS
from tests.services.conftest import serving
from tests.services.segmentation.helpers import purchase
from tests.support import produce_events, read_topic, wait_until

import segmentation.app
from segmentation.settings import SegmentationSettings


async def test_consumed_purchase_moves_customer_into_rule_segment_and_event_reaches_kafka(
    database_url, kafka_bootstrap, topic_prefix
):
    settings = SegmentationSettings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, relay_poll_interval_s=0.2
    )
    customer = uuid.uuid4()
    async with serving(segmentation.app.create_app(settings)) as client:
        created = await client.post(
            "/v1/segments", json={"key": "spent-100", "name": "Spent 100+", "rule": {"field": "spend", "op": "gte", "value": 100}}
        )
        assert created.status_code == 201
        events = [purchase(customer, "70.00", 1), purchase(customer, "40.00", 2)]
        await produce_events(
            kafka_bootstrap,
            topic_prefix + INTERACTION_EVENTS,
            [Envelope.wrap(p, source=SOURCE, subject=str(customer)) for p in events],
        )

        async def member() -> bool:
            view = await client.get(f"/v1/customers/{customer}/segmentation")
            return view.status_code == 200 and [s["key"] for s in view.json()["segments"]] == ["rule:spent-100"]

        await wait_until(member, timeout=60, message="the customer in the rule segment")
        records = await read_topic(kafka_bootstrap, topic_prefix + SEGMENTATION_EVENTS, expected=1, timeout=60)
    event = Envelope.from_kafka(records[0].value, records[0].headers)
    payload = event.payload(SegmentMembershipChanged)
    assert records[0].key == str(customer).encode() and event.subject == str(customer)
    assert payload.segment_key == "rule:spent-100" and payload.change == "entered"
