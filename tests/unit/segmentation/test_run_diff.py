"""The numpy parts of a run's membership diff: pairs compared, UUID text, event rows as CloudEvents."""

import time
import uuid
from datetime import UTC, datetime

import numpy as np

from shared.contracts.envelope import Envelope, EnvelopeTemplate
from shared.contracts.segmentation import SegmentMembershipChanged
from shared.messaging.outbox import Outbox

from segmentation.segments import run_diff
from segmentation.tables import messaging


def ids(*ints: int) -> np.ndarray:
    return np.array([uuid.UUID(int=i).bytes for i in ints], dtype="V16")


def test_pair_diff_enters_new_pairs_and_leaves_pairs_no_longer_assigned():
    # Customer 1 stays in segment 0, 2 moves 0 → 1, 3 is new in 1; 4 (in 1) is no longer assigned.
    entered, left = run_diff.pair_diff(np.array([0, 1, 1]), ids(1, 2, 3), np.array([0, 0, 1]), ids(1, 2, 4))
    assert entered.tolist() == [False, True, True]
    assert left.tolist() == [False, True, True]
    # Same customer bytes in the high or low half only: compared as whole UUIDs.
    entered, left = run_diff.pair_diff(np.array([0]), ids(1 << 64), np.array([0]), ids(1))
    assert entered.tolist() == [True] and left.tolist() == [True]
    entered, left = run_diff.pair_diff(np.array([], dtype=np.int64), ids(), np.array([], dtype=np.int64), ids())
    assert len(entered) == 0 and len(left) == 0


def test_uuid_text_and_random_uuids():
    values = [uuid.uuid4() for _ in range(50)] + [uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1)]
    text = run_diff.uuid_text(np.array([v.bytes for v in values], dtype="V16"))
    assert [bytes(row).decode() for row in text] == [str(v) for v in values]
    random = [uuid.UUID(bytes=bytes(v)) for v in run_diff.random_uuids(1000)]
    assert len(set(random)) == 1000 and {u.version for u in random} == {4}
    assert {u.variant for u in random} == {uuid.RFC_4122}


def test_time_ordered_uuids():
    before = time.time_ns() // 1_000_000
    first = [uuid.UUID(bytes=bytes(v)) for v in run_diff.time_ordered_uuids(1000)]
    time.sleep(0.002)
    second = [uuid.UUID(bytes=bytes(v)) for v in run_diff.time_ordered_uuids(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(first + second)) == 2000
    assert {u.version for u in first + second} == {7} and {u.variant for u in first + second} == {uuid.RFC_4122}
    assert all(before <= u.int >> 80 <= after for u in first + second)
    assert max(first) < min(second), "a later chunk's ids sort after an earlier one's"


def test_event_rows_are_binary_copy_rows_that_fill_the_template_to_the_models_events():
    now, run_id = datetime(2026, 12, 5, 12, 0, tzinfo=UTC), uuid.uuid4()
    segment = run_diff.Segment(uuid.uuid4(), "rfm:x:big", 'Big "spenders" \\ ünïcode\ttab', "rfm")
    customers = [uuid.uuid4() for _ in range(3)]
    events = run_diff.EventRows(Outbox(messaging, "segmentation"), now, run_id)
    parts, holes = events.template(segment, "left")
    chunks = list(events.rows({0: 77}, np.array([c.bytes for c in customers], dtype="V16"), np.zeros(3, dtype=np.int64)))
    data, offset, seen = b"".join(chunks), 0, []
    while offset < len(data):
        assert int.from_bytes(data[offset : offset + 2], "big") == 4
        offset += 2
        fields = []
        for _ in range(4):
            length = int.from_bytes(data[offset : offset + 4], "big")
            fields.append(data[offset + 4 : offset + 4 + length])
            offset += 4 + length
        event_id, topic, key, template_id = fields
        assert int.from_bytes(template_id, "big") == 77
        # What the relay sends for the row (its version is the row's id, drawn by the COPY).
        row_id = str(1000 + len(seen))
        payload = EnvelopeTemplate(parts, holes).fill({"event_id": event_id.decode(), "key": key.decode(), "id": row_id})
        env = Envelope.from_json(payload)
        assert payload == env.to_json()  # the envelope's own JSON, byte for byte
        p = env.payload(SegmentMembershipChanged)
        assert (env.id, env.subject, topic) == (event_id.decode(), key.decode(), b"segmentation.events")
        assert (p.segment_id, p.segment_name, p.segment_key, p.kind, p.change, p.run_id, p.changed_at, p.version) == (
            segment.segment_id,
            segment.name,
            segment.key,
            "rfm",
            "left",
            run_id,
            now,
            int(row_id),
        )
        seen.append(p.customer_id)
    assert seen == customers
