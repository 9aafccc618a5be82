"""Membership events assembled in SQL parse to exactly the model's event, whatever the segment's name holds."""

import time
import uuid

import orjson
import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SegmentationRunCompleted, SegmentMembershipChanged
from tests.services.segmentation.helpers import erased, outbox_rows, purchase
from tests.services.segmentation.test_runs_api import run


async def outbox_events(feeder) -> list[Envelope]:
    events = []
    for r, payload in await outbox_rows(feeder.engine):
        env = Envelope.from_json(payload)
        assert env.id == r.event_id and env.subject == r.key
        # The members the model would serialise (none missing, none extra), with the same values once parsed.
        raw, model = orjson.loads(payload), orjson.loads(env.to_json())
        assert raw.keys() == model.keys() and raw["data"].keys() == model["data"].keys()
        assert Envelope.from_json(env.to_json()) == env
        events.append(env)
    return events


async def test_run_and_rule_events_are_the_models_events(client, feeder):
    started_ms = time.time_ns() // 1_000_000
    name = 'Big "spenders" \\ ünïcode\ttab </script>'
    created = await client.post(
        "/v1/segments", json={"key": "big-spenders", "name": name, "rule": {"field": "spend", "op": "gte", "value": 100}}
    )
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
    # Time-ordered ids (shared/ids.py), from both paths: the rule refresh's SQL and the run's numpy rows.
    ids = {kind: [uuid.UUID(e.id) for e in events if e.payload(SegmentMembershipChanged).kind == kind] for kind in by_kind}
    every = ids["rule"] + ids["rfm"]
    assert {i.version for i in every} == {7} and {i.variant for i in every} == {uuid.RFC_4122}
    assert all(started_ms <= i.int >> 80 <= time.time_ns() // 1_000_000 for i in every)
    assert max(ids["rule"]) < min(ids["rfm"]), "the refresh's events were made before the run's"


async def test_a_run_that_moves_customers_closes_opens_and_announces_each_move_once(client, feeder):
    customers = [uuid.UUID(int=i + 1) for i in range(20)]
    await feeder.apply([purchase(c, f"{10 * (i + 1)}.00", days=i * 10) for i, c in enumerate(customers)])
    first = await run(client, kind="rfm", as_of="2026-12-31T00:00:00Z")
    # The five weakest customers buy often and lately: they move up; others move down the ranks.
    await feeder.apply([purchase(c, "500.00", days=300 + k) for c in customers[:5] for k in range(6)])
    before = len(await outbox_events(feeder))
    second = await run(client, kind="rfm", as_of="2026-12-31T00:00:00Z")

    async with feeder.engine.connect() as conn:

        def assigned(run_id):
            return conn.execute(
                sa.text("SELECT customer_id, segment_id FROM segmentation.run_result WHERE run_id = :r"), {"r": run_id}
            )

        was = dict((await assigned(first["run_id"])).all())
        now = dict((await assigned(second["run_id"])).all())
        memberships = (
            await conn.execute(
                sa.text("SELECT customer_id, segment_id, entered_run_id, left_run_id FROM segmentation.segment_membership")
            )
        ).all()
    moved = {c for c in customers if was[c] != now[c]}
    assert moved and len(moved) < len(customers)
    assert second["result"]["membership_changes"] == 2 * len(moved)

    # One truth: the open memberships are the second run's assignments; every exit is kept, closed by that run.
    assert {(m.customer_id, m.segment_id) for m in memberships if m.left_run_id is None} == set(now.items())
    closed = [m for m in memberships if m.left_run_id is not None]
    assert {(m.customer_id, m.segment_id) for m in closed} == {(c, was[c]) for c in moved}
    assert {str(m.left_run_id) for m in closed} == {second["run_id"]}
    assert len(memberships) == len(customers) + len(moved)

    # Exactly one event per change, each customer's exit before its entry; per segment counts in the summary.
    events = [e for e in (await outbox_events(feeder))[before:] if e.type == SegmentMembershipChanged.EVENT_TYPE]
    changes = [(p.customer_id, p.segment_id, p.change) for p in (e.payload(SegmentMembershipChanged) for e in events)]
    assert sorted(changes) == sorted([(c, was[c], "left") for c in moved] + [(c, now[c], "entered") for c in moved])
    assert all(changes.index((c, was[c], "left")) < changes.index((c, now[c], "entered")) for c in moved)
    assert len({e.id for e in events}) == len(events)
    assert {str(e.payload(SegmentMembershipChanged).run_id) for e in events} == {second["run_id"]}
    for s in second["result"]["segments"]:
        sid = uuid.UUID(s["segment_id"])
        assert s["entered"] == sum(1 for c in moved if now[c] == sid)
        assert s["left"] == sum(1 for c in moved if was[c] == sid)


async def test_erasure_gives_a_templated_event_its_own_redacted_payload_and_leaves_the_others_templated(client, feeder):
    customers = [uuid.uuid4() for _ in range(6)]
    await feeder.apply([purchase(c, f"{10 * (i + 1)}.00", days=i) for i, c in enumerate(customers)])
    await run(client, kind="rfm", as_of="2026-12-31T00:00:00Z")
    ours = {str(c) for c in customers}
    before = {r.key: (r, payload) for r, payload in await outbox_rows(feeder.engine) if r.key in ours}
    assert all(r.template_id is not None and r.payload is None for r, _ in before.values()), "a run's rows are templated"

    gone = str(customers[0])
    await feeder.apply([erased(customers[0])])
    after = {r.key: (r, payload) for r, payload in await outbox_rows(feeder.engine) if r.key in ours}
    # Redacted in place (a membership event holds nothing to tokenise: the same event, now in its own payload).
    row, payload = after[gone]
    assert row.template_id is None and row.payload is not None and row.id == before[gone][0].id
    assert Envelope.from_json(payload) == Envelope.from_json(before[gone][1])
    for other in ours - {gone}:
        assert after[other][0].template_id == before[other][0].template_id and after[other][0].payload is None
        assert after[other][1] == before[other][1]
