"""A run's membership diff in numpy, written with binary COPY: close what ended, open what began, one outbox
event per change, all in the run's transaction.

The open memberships of the segments the run decides are read with one binary COPY and compared with the
run's assignments as arrays. Exits are one UPDATE by membership id (only the rows it actually closed get an
event); entries and their events are streamed in with binary COPY. Each event is an outbox row naming its
segment's and change's template (`EventRows`: the envelope's own JSON, stored once), with its event id and
customer id written at fixed byte offsets: every id is 36 characters, so all rows of one segment and change
have the same length and a whole chunk is filled by numpy in a few array assignments.

The previous set-based statement (`INSERT … SELECT … ON CONFLICT`, the event JSON concatenated per row in
SQL; kept in bench/segmentation.py as the reference) cost Postgres ~1.7× the CPU on a first 1M run; figures
in docs/segmentation.md.
Why it may skip `ON CONFLICT`: only runs open memberships of run-decided segments, and one run per family
executes at a time (its lease), so nothing else can open the same (segment, customer) meanwhile; if something
did, the unique index fails the run, which rolls back whole and can be run again.
"""

import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import EnvelopeTemplate
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.log import current_correlation_id
from shared.messaging.outbox import Outbox

from segmentation.runs.binary_copy import CHUNK_ROWS, copy_in, copy_out, copy_rows, pg_epoch_us
from segmentation.segments.membership import Segment, event_template

OPEN_COLUMNS = [("membership_id", "int8"), ("customer_id", "uuid"), ("segment_id", "uuid")]
OPEN_QUERY = """
SELECT membership_id, customer_id, segment_id FROM segmentation.segment_membership
WHERE segment_id = ANY($1::uuid[]) AND left_at IS NULL
"""
CLOSE = sa.text("""
UPDATE segmentation.segment_membership m
   SET left_at = CAST(:now AS timestamptz), left_run_id = CAST(:run_id AS uuid), updated_at = now()
FROM unnest(CAST(:ids AS bigint[])) AS x(membership_id)
WHERE m.membership_id = x.membership_id AND m.left_at IS NULL
RETURNING m.membership_id
""")
OUTBOX_FIELDS = ["event_id", "topic", "key", "template_id"]
ID_LENGTH = EnvelopeTemplate.HOLE_LENGTH  # UUID text
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where the 32 hex digits of a UUID go in its 36-character text form (dashes at 8, 13, 18, 23).
HEX_POSITIONS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


async def scope_segments(session: AsyncSession, families: list[str]) -> list[Segment]:
    """Every segment of the families a run decides (also those the run assigns nobody to: their members leave)."""
    rows = (
        await session.execute(
            sa.text(
                "SELECT segment_id, key, name, kind FROM segmentation.segment WHERE family = ANY(CAST(:f AS text[])) ORDER BY key"
            ),
            {"f": families},
        )
    ).all()
    return [Segment(r.segment_id, r.key, r.name, r.kind) for r in rows]


async def apply(
    session: AsyncSession,
    outbox: Outbox,
    *,
    now: datetime,
    run_id: uuid.UUID,
    scope: list[Segment],
    customer_ids: np.ndarray,
    segment_ids: np.ndarray,
) -> dict[uuid.UUID, dict[str, int]]:
    """Make the open memberships of `scope` exactly the run's assignments (customer_ids[i] in segment_ids[i],
    both arrays of 16-byte UUIDs), with one `segment.membership_changed` event per change in the outbox.
    Returns {segment_id: {"entered": n, "left": n}} for the segments that changed."""
    scope_bytes = np.array([s.segment_id.bytes for s in scope], dtype="V16")
    open_rows = await copy_out(session, OPEN_QUERY, OPEN_COLUMNS, [s.segment_id for s in scope])
    new_segment = segment_positions(segment_ids, scope_bytes)
    old_segment = segment_positions(open_rows["segment_id"], scope_bytes)
    entered, left = pair_diff(new_segment, customer_ids, old_segment, np.ascontiguousarray(open_rows["customer_id"]))

    left_ids = open_rows["membership_id"][left].astype(np.int64)
    if len(left_ids):
        closed = await session.execute(CLOSE, {"now": now, "run_id": run_id, "ids": np.sort(left_ids).tolist()})
        # A membership another transaction closed meanwhile (a merge) is not ours to announce.
        left &= np.isin(open_rows["membership_id"], np.fromiter(closed.scalars(), dtype=np.int64))
    left_customers, left_segments = np.ascontiguousarray(open_rows["customer_id"][left]), old_segment[left]
    entered_customers, entered_segments = customer_ids[entered], new_segment[entered]

    if len(entered_customers):
        await copy_in(
            session,
            "segment_membership",
            "segmentation",
            [("segment_id", "uuid"), ("customer_id", "uuid"), ("entered_at", "timestamptz"), ("entered_run_id", "uuid")],
            {
                "segment_id": scope_bytes[entered_segments],
                "customer_id": entered_customers,
                "entered_at": np.int64(pg_epoch_us(now)),
                "entered_run_id": np.void(run_id.bytes),
            },
            len(entered_customers),
        )
    # Exits first, then entries: a customer moving between segments is announced leaving before entering.
    events = EventRows(outbox, now, run_id)
    left_templates = await events.templates(session, scope, "left", left_segments)
    entered_templates = await events.templates(session, scope, "entered", entered_segments)
    await copy_rows(
        session,
        "outbox",
        "segmentation",
        OUTBOX_FIELDS,
        _chain(
            events.rows(left_templates, left_customers, left_segments),
            events.rows(entered_templates, entered_customers, entered_segments),
        ),
    )

    moved: dict[uuid.UUID, dict[str, int]] = {}
    for change, positions in (("left", left_segments), ("entered", entered_segments)):
        for position, n in enumerate(np.bincount(positions, minlength=len(scope))):
            if n:
                moved.setdefault(scope[position].segment_id, {"entered": 0, "left": 0})[change] = int(n)
    return moved


def segment_positions(segment_ids: np.ndarray, scope_bytes: np.ndarray) -> np.ndarray:
    """The position in the scope of each 16-byte segment id (a run's segments are few: one pass each)."""
    positions = np.full(len(segment_ids), -1, dtype=np.int64)
    for i, sid in enumerate(scope_bytes):
        positions[segment_ids == sid] = i
    if (positions < 0).any():
        raise ValueError("a run assigned a segment outside the families it decides")
    return positions


def pair_diff(
    new_segment: np.ndarray, new_customer: np.ndarray, old_segment: np.ndarray, old_customer: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(entered, left): masks of the new pairs not open now, and of the open pairs the run no longer assigns.
    Each side holds a (segment, customer) pair at most once, so a pair on both sides is two adjacent rows
    once everything is sorted by segment and customer."""
    n_new = len(new_segment)
    if not n_new or not len(old_segment):  # a first run, or a run that assigns nobody: nothing to match
        return np.ones(n_new, dtype=bool), np.ones(len(old_segment), dtype=bool)
    segment = np.concatenate([new_segment, old_segment])
    halves = np.concatenate([_halves(new_customer), _halves(old_customer)])
    order = np.lexsort((halves[:, 1], halves[:, 0], segment))
    s, hi, lo = segment[order], halves[order, 0], halves[order, 1]
    same = (s[1:] == s[:-1]) & (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
    matched_sorted = np.zeros(len(order), dtype=bool)
    matched_sorted[1:] |= same
    matched_sorted[:-1] |= same
    matched = np.empty(len(order), dtype=bool)
    matched[order] = matched_sorted
    return ~matched[:n_new], ~matched[n_new:]


def _halves(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids).view(">u8").reshape(-1, 2)


def uuid_text(ids: np.ndarray) -> np.ndarray:
    """(n, 36) ASCII bytes: the canonical text of n 16-byte UUIDs."""
    raw = np.ascontiguousarray(ids).view(np.uint8).reshape(-1, 16)
    digits = np.empty((len(raw), 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = raw >> 4, raw & 0x0F
    text = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    text[:, HEX_POSITIONS] = HEX[digits]
    return text


def random_uuids(n: int) -> np.ndarray:
    """n random (version 4) UUIDs as 16-byte values."""
    return _uuids(np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy(), version=4)


def time_ordered_uuids(n: int) -> np.ndarray:
    """n time-ordered (version 7, RFC 9562) UUIDs as 16-byte values: the events' ids. The time in milliseconds,
    then 74 random bits: a chunk's ids sort after every id made before its millisecond, so the consumers' inboxes
    take them at the right-hand edge of their indexes (shared/ids.py)."""
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = np.frombuffer((time.time_ns() // 1_000_000).to_bytes(6, "big"), dtype=np.uint8)
    return _uuids(raw, version=7)


def _uuids(raw: np.ndarray, version: int) -> np.ndarray:
    """(n, 16) bytes marked as UUIDs of `version` (RFC 9562 variant), as n 16-byte values."""
    raw[:, 6] = (raw[:, 6] & 0x0F) | (version << 4)
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw.view("V16").reshape(len(raw))


class EventRows:
    """Binary COPY outbox rows (event_id, topic, key, template_id) of `segment.membership_changed` events.

    Every event of one segment and change is one template (`membership.event_template`: the envelope's own JSON
    with holes for the event id and the customer id), stored once with `Outbox.add_template`; a row carries
    only its ids and the template's id, and the relay fills the holes when it sends. A row is ~150 bytes where
    the whole event was ~800: on a first run of a million customers that is ~600 MB less WAL."""

    # Which outbox column fills each hole: the version is the row's id (membership.py), drawn by this COPY, after
    # the run's changes hold their membership rows.
    HOLE_COLUMNS = {"event_id": "event_id", "customer_id": "key", "version": "id"}

    def __init__(self, outbox: Outbox, now: datetime, run_id: uuid.UUID) -> None:
        self.outbox = outbox
        self.topic = (outbox.topic_prefix + SEGMENTATION_EVENTS).encode()
        # Read once, where the run runs: the rows are built later, chunk by chunk, in worker threads.
        self.now, self.run_id, self.correlation_id = now, run_id, current_correlation_id()

    async def templates(self, session: AsyncSession, scope: list[Segment], change: str, positions: np.ndarray) -> dict[int, int]:
        """{position in the scope: template id} for the segments with events of this change."""
        ids = {}
        for position in np.flatnonzero(np.bincount(positions, minlength=len(scope))):
            ids[int(position)] = await self.outbox.add_template(session, *self.template(scope[position], change))
        return ids

    def template(self, segment: Segment, change: str) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
        """The parts and holes of the events of one segment and change, as `Outbox.add_template` takes them."""
        event = event_template(segment, change, self.now, self.run_id, self.correlation_id)
        return event.parts, tuple(self.HOLE_COLUMNS[h] for h in event.holes)

    def row(self, template_id: int) -> tuple[np.ndarray, int, int]:
        """One COPY row with blanks, the offsets of the event id's blank and of the customer id's."""
        row = bytearray(len(OUTBOX_FIELDS).to_bytes(2, "big"))
        row += ID_LENGTH.to_bytes(4, "big")
        event_blank = len(row)
        row += b" " * ID_LENGTH
        row += len(self.topic).to_bytes(4, "big") + self.topic
        row += ID_LENGTH.to_bytes(4, "big")
        customer_blank = len(row)
        row += b" " * ID_LENGTH
        row += (8).to_bytes(4, "big") + template_id.to_bytes(8, "big")
        return np.frombuffer(bytes(row), dtype=np.uint8), event_blank, customer_blank

    def rows(self, templates: dict[int, int], customers: np.ndarray, positions: np.ndarray) -> Iterator[bytes]:
        """The events of one change, segment by segment, in chunks of whole rows."""
        for position, template_id in templates.items():
            members = customers[positions == position]
            row, event_blank, customer_blank = self.row(template_id)
            for start in range(0, len(members), CHUNK_ROWS):
                chunk = members[start : start + CHUNK_ROWS]
                rows = np.tile(row, (len(chunk), 1))
                rows[:, event_blank : event_blank + ID_LENGTH] = uuid_text(time_ordered_uuids(len(chunk)))
                rows[:, customer_blank : customer_blank + ID_LENGTH] = uuid_text(chunk)
                yield rows.tobytes()


def _chain(*iterators: Iterator[bytes]) -> Iterator[bytes]:
    for it in iterators:
        yield from it
