"""Set-based membership diffs of rule segments: close what ended, open what began, and publish each change
through the outbox. (A run's diff, a million rows at a time, is done in numpy and binary COPY: run_diff.py.)

One statement per diff. Data-modifying CTEs close the memberships that no longer hold, open the new ones,
and insert one `segment.membership_changed` CloudEvent per change into the outbox table, so a refresh that
moves many customers needs no Python loop. Each event is its segment's and change's `EnvelopeTemplate` (cut
out of `Envelope.to_json` in Python, so the JSON is the envelope's own) with the event id and the customer id
concatenated into its holes per row; the event id is an md5 of a per-statement random salt, the segment, the
customer and the change (unique: a statement changes a membership at most once), its first 48 bits replaced by
the statement's time in milliseconds and marked version 7: time-ordered, as every event id (shared/ids.py), so
the consumers' inboxes take the ids at the right-hand edge of their indexes. On a million events
`json_build_object` and `gen_random_uuid` per row cost ~20 s; this costs ~1 s.

Each event's `version` (segmentation's order of a customer's membership of a segment, which the copies keep:
shared/contracts/ordering.py) is its outbox row's id. That id is drawn after the change holds its membership row,
and no other change of that customer and segment can follow until this one commits: the next close waits for
the row lock (and finds the membership closed), the next entry waits on the open-membership unique index or
sees none to add until this commit is visible to it. So a later change always draws a greater id, whatever the
clock of the replica that decided it said (`changed_at` may go back).
"""

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Envelope, EnvelopeTemplate
from shared.contracts.segmentation import SOURCE, SegmentMembershipChanged
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.log import current_correlation_id
from shared.messaging.outbox import Outbox

CHANGES = ("left", "entered")
HOLES = ("event_id", "customer_id", "version")


@dataclass(frozen=True)
class Segment:
    """What a membership event says about its segment."""

    segment_id: uuid.UUID
    key: str
    name: str
    kind: str


def event_template(
    segment: Segment, change: str, now: datetime, run_id: uuid.UUID | None, correlation_id: str | None
) -> EnvelopeTemplate:
    """The `segment.membership_changed` event of one segment and change, with holes for the event id, the customer id
    and the version."""

    def envelope(ids: Mapping[str, str]) -> Envelope:
        payload = SegmentMembershipChanged(
            customer_id=ids["customer_id"],
            segment_id=segment.segment_id,
            segment_key=segment.key,
            segment_name=segment.name,
            kind=segment.kind,
            change=change,
            changed_at=now,
            run_id=run_id,
            version=int(ids["version"]),
        )
        return Envelope.wrap(
            payload, source=SOURCE, subject=ids["customer_id"], time=now, correlation_id=correlation_id, event_id=ids["event_id"]
        )

    return EnvelopeTemplate.of(envelope, HOLES, numbers=("version",))


# Every template has this shape (its holes in this order), whatever the segment: the statement is written once.
SHAPE = event_template(Segment(uuid.uuid4(), "probe", "probe", "rule"), "left", datetime.now().astimezone(), None, None)
PARTS = [f"part{i}" for i in range(len(SHAPE.parts))]
EVENT_HOLES = {"event_id": "e.event_id", "customer_id": "e.customer_id::text", "version": "e.id::text"}  # per row, below

# `changes(customer_id, segment_id, change)` → outbox rows; then the counts per segment and change.
PUBLISH_AND_COUNT = f"""
, changes AS (SELECT * FROM left_rows UNION ALL SELECT * FROM entered_rows)
, salt AS (SELECT gen_random_uuid()::text AS salt, pg_get_serial_sequence('segmentation.outbox', 'id')::regclass AS ids)
, templates AS (
    SELECT * FROM unnest(CAST(:template_segment AS uuid[]), CAST(:template_change AS text[]),
                         {", ".join(f"CAST(:template_{p} AS text[])" for p in PARTS)})
           AS t(segment_id, change, {", ".join(PARTS)})
)
, published AS (
    INSERT INTO segmentation.outbox (id, event_id, topic, key, payload)
    SELECT e.id, e.event_id, :topic, e.customer_id::text,
           convert_to({SHAPE.sql([f"t.{p}" for p in PARTS], EVENT_HOLES)}, 'UTF8')
    FROM (SELECT CAST(CAST(:id_time AS text) || '7' || substr(m.h, 14, 3) || '8' || substr(m.h, 18) AS uuid)::text AS event_id,
                 nextval(salt.ids) AS id,  -- the row's id and the event's version (the module's docstring)
                 c.*
          FROM changes c CROSS JOIN salt
          CROSS JOIN LATERAL (SELECT md5(salt.salt || c.segment_id::text || c.customer_id::text || c.change) AS h) m) e
    JOIN templates t ON t.segment_id = e.segment_id AND t.change = e.change
    RETURNING 1
)
SELECT segment_id, change, count(*) AS n FROM changes GROUP BY segment_id, change
"""


def rule_diff(matched_sql: str, scoped: bool) -> sa.TextClause:
    """The diff of one rule segment: `matched_sql` selects the customer_ids that satisfy it now; each entry and
    exit records `:version`, the rule version that caused it."""
    scope = "AND m.customer_id = ANY(CAST(:customer_ids AS uuid[]))" if scoped else ""
    return sa.text(
        f"""
WITH matched AS ({matched_sql}), left_rows AS (
    UPDATE segmentation.segment_membership m SET left_at = CAST(:now AS timestamptz), left_run_id = CAST(:run_id AS uuid),
        left_version = CAST(:version AS int), updated_at = now()
    WHERE m.segment_id = CAST(:segment_id AS uuid) AND m.left_at IS NULL {scope}
      AND NOT EXISTS (SELECT 1 FROM matched x WHERE x.customer_id = m.customer_id)
    RETURNING m.customer_id, m.segment_id, 'left'::text AS change
), entered_rows AS (
    INSERT INTO segmentation.segment_membership (segment_id, customer_id, entered_at, entered_run_id, entered_version)
    SELECT CAST(:segment_id AS uuid), x.customer_id, CAST(:now AS timestamptz), CAST(:run_id AS uuid),
           CAST(:version AS int) FROM matched x
    WHERE NOT EXISTS (SELECT 1 FROM segmentation.segment_membership m
                      WHERE m.segment_id = CAST(:segment_id AS uuid) AND m.customer_id = x.customer_id AND m.left_at IS NULL)
    -- Two consumers re-evaluating the same customer at once: the second insert is a no-op, not an error.
    ON CONFLICT (segment_id, customer_id) WHERE left_at IS NULL DO NOTHING
    RETURNING customer_id, segment_id, 'entered'::text AS change
)"""
        + PUBLISH_AND_COUNT
    )


# Every open membership of `customer_ids` in the segments given ends (a merged-away id's: its memberships end with
# the merge; the survivor's are decided by its re-derived data), each exit published like any other.
CLOSE_CUSTOMERS = sa.text(
    """
WITH left_rows AS (
    UPDATE segmentation.segment_membership m SET left_at = CAST(:now AS timestamptz), updated_at = now()
    WHERE m.customer_id = ANY(CAST(:customer_ids AS uuid[])) AND m.left_at IS NULL
      AND m.segment_id = ANY(CAST(:template_segment AS uuid[]))
    RETURNING m.customer_id, m.segment_id, 'left'::text AS change
), entered_rows AS (SELECT CAST(NULL AS uuid) AS customer_id, CAST(NULL AS uuid) AS segment_id, ''::text AS change WHERE false)"""
    + PUBLISH_AND_COUNT
)
OPEN_SEGMENTS = sa.text("""
SELECT DISTINCT s.segment_id, s.key, s.name, s.kind FROM segmentation.segment_membership m
JOIN segmentation.segment s ON s.segment_id = m.segment_id
WHERE m.customer_id = ANY(CAST(:customer_ids AS uuid[])) AND m.left_at IS NULL
""")


CLOSE_UNANNOUNCED = sa.text("""UPDATE segmentation.segment_membership SET left_at = :now, updated_at = now()
WHERE customer_id = ANY(CAST(:customer_ids AS uuid[])) AND left_at IS NULL""")


async def close_customers(session: AsyncSession, outbox: Outbox | None, customer_ids: Sequence[uuid.UUID], at: datetime) -> None:
    """End every open membership of these customers at `at` and publish each exit: the copies (interaction's,
    clv's) hear every change segmentation makes to a membership, or they keep a member segmentation no longer has
    (a customer restored by an unmerge stayed a member of what it was in before its merge, in interaction's copy).
    Without an outbox (a test feeding the projection alone, the legacy `purchases` subscription) they only end."""
    if not customer_ids:
        return
    if outbox is None:
        await session.execute(CLOSE_UNANNOUNCED, {"customer_ids": customer_ids, "now": at})
        return
    segments = [
        Segment(r.segment_id, r.key, r.name, r.kind) for r in await session.execute(OPEN_SEGMENTS, {"customer_ids": customer_ids})
    ]
    if not segments:
        return
    # A membership opened meanwhile in another segment (a rule refresh from the API) is not closed here: only the
    # segments whose events the statement can build.
    params = {**publish_params(outbox, at, None, segments), "customer_ids": customer_ids}
    if (await session.execute(CLOSE_CUSTOMERS, params)).all():
        await notify_relay(session, outbox)


def publish_params(outbox: Outbox, now: datetime, run_id: uuid.UUID | None, segments: Sequence[Segment]) -> dict:
    """The statement's parameters: the event templates of `segments` (those whose members it may change)."""
    correlation_id = current_correlation_id()
    templates = [
        (s.segment_id, change, event_template(s, change, now, run_id, correlation_id)) for s in segments for change in CHANGES
    ]
    for _, _, template in templates:
        if template.holes != SHAPE.holes:  # cannot happen while the payload keeps its fields; fail loudly if it does
            raise ValueError(f"a membership event's holes are {template.holes}, the statement expects {SHAPE.holes}")
    return {
        "topic": outbox.topic_prefix + SEGMENTATION_EVENTS,
        "id_time": f"{time.time_ns() // 1_000_000:012x}",  # the event ids' first 48 bits (the module's docstring)
        "now": now,
        "run_id": run_id,
        "template_segment": [segment_id for segment_id, _, _ in templates],
        "template_change": [change for _, change, _ in templates],
        **{f"template_{p}": [t.parts[i].decode() for _, _, t in templates] for i, p in enumerate(PARTS)},
    }


async def notify_relay(session: AsyncSession, outbox: Outbox) -> None:
    """Wake the relay at commit, as `Outbox.add` does."""
    await session.execute(sa.select(sa.func.pg_notify(outbox.channel, "")))


def movement(rows: Sequence[sa.Row]) -> dict[uuid.UUID, dict[str, int]]:
    """{segment_id: {"entered": n, "left": n}} from a diff's counts."""
    out: dict[uuid.UUID, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r.segment_id, {"entered": 0, "left": 0})[r.change] = r.n
    return out
