"""Membership events assembled in SQL parse to exactly the model's event, whatever the segment's name holds."""

import uuid

import orjson
import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SegmentationRunCompleted, SegmentMembershipChanged
from tests.services.segmentation.helpers import purchase
from tests.services.segmentation.test_runs_api import run


async def outbox_events(feeder) -> list[Envelope]:
    async with feeder.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT event_id, key, payload FROM segmentation.outbox ORDER BY id"))).all()
    events = []
    for r in rows:
        env = Envelope.from_json(bytes(r.payload))
        assert env.id == r.event_id and env.subject == r.key
        # The members the model would serialise (none missing, none extra), with the same values once parsed.
        raw, model = orjson.loads(bytes(r.payload)), orjson.loads(env.to_json())
        assert raw.keys() == model.keys() and raw["data"].keys() == model["data"].keys()
        assert Envelope.from_json(env.to_json()) == env
        events.append(env)
    return events


async def test_run_and_rule_events_are_the_models_events(client, feeder):
    name = 'Big "spenders" \\ ünïcode\ttab </script>'
    created = await client.post("/v1/segments", json={
        "key": "big-spenders", "name": name, "rule": {"field": "spend", "op": "gte", "value": 100}})
    assert created.status_code == 201, created.text
    customers = [uuid.uuid4() for _ in range(5)]
    await feeder.apply([purchase(c, "150.00", days=i) for i, c in enumerate(customers)])  # rule refresh: 5 events
    done = await run(client, kind="rfm", as_of="2026-12-31T00:00:00Z")

    everything = await outbox_events(feeder)
    # The run also says it finished (one event, no subject: every customer's scores may have moved).
    completed = [e for e in everything if e.type == SegmentationRunCompleted.EVENT_TYPE]
    assert [str(e.payload(SegmentationRunCompleted).run_id) for e in completed] == [done["run_id"]]
    assert completed[0].subject is None
    events = [e for e in everything if e.type == SegmentMembershipChanged.EVENT_TYPE]
    assert len(events) == 10 and len({e.id for e in events}) == 10
    by_kind = {}
    for e in events:
        p = e.payload(SegmentMembershipChanged)
        assert p.change == "entered" and str(p.customer_id) == e.subject
        by_kind.setdefault(p.kind, []).append(p)
    assert {p.segment_name for p in by_kind["rule"]} == {name}
    assert all(p.run_id is None for p in by_kind["rule"]), "a rule refresh outside a run has no run id"
    assert {str(p.run_id) for p in by_kind["rfm"]} == {done["run_id"]}
