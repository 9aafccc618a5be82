"""Queries on `gateway.customer_view_copy`.

The hot path (`read`, `fill`) runs on a raw asyncpg pool: one round trip each, no ORM session and no pool
pre-ping round trip (the view is served at ~1,000/s from one process). The projection's statements run in the
inbox consumer's transaction (SQLAlchemy), so they commit with the inbox rows.
"""

import uuid
from datetime import datetime

import asyncpg
import sqlalchemy as sa

from gateway.customer_view.models import PARTS, WHOLE_PART_CHANGES

_COLUMNS = [
    "customer_id",
    "survivor_id",
    "last_event_at",
    *[f"{p}_{c}" for p in PARTS for c in ("status", "body", "as_of", "version")],
]

# When each part was last changed for everyone (`<part>_changed_at`, null: never), on every row read.
_CHANGED = ", ".join(
    f"(SELECT changed_at FROM gateway.view_part_changed WHERE part = '{p}') AS {p}_changed_at" for p in WHOLE_PART_CHANGES
)

# The asked-for row and, when its profile resolved to a survivor, the survivor's row: one round trip.
READ = f"""
SELECT {", ".join(_COLUMNS)}, {_CHANGED} FROM gateway.customer_view_copy WHERE customer_id = $1
UNION ALL
SELECT {", ".join("s." + c for c in _COLUMNS)}, {_CHANGED}
FROM gateway.customer_view_copy v JOIN gateway.customer_view_copy s ON s.customer_id = v.survivor_id
WHERE v.customer_id = $1 AND v.survivor_id IS NOT NULL AND v.survivor_id <> v.customer_id
"""


async def read(pool: asyncpg.Pool, customer_id: uuid.UUID) -> dict[uuid.UUID, asyncpg.Record]:
    return {r["customer_id"]: r for r in await pool.fetch(READ, customer_id)}


# Many customers' rows at once (a page of segment members): their profile parts only matter there.
READ_MANY = f"""SELECT {", ".join(_COLUMNS)} FROM gateway.customer_view_copy WHERE customer_id = ANY($1::uuid[])"""


async def read_many(pool: asyncpg.Pool, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    return {r["customer_id"]: r for r in await pool.fetch(READ_MANY, customer_ids)}


_FILL: dict[tuple[str, ...], str] = {}


def _fill_sql(parts: tuple[str, ...], with_survivor: bool) -> str:
    key = (*parts, "+survivor" if with_survivor else "")
    if key not in _FILL:
        sets, n = [], 2
        for p in parts:
            # A part is replaced only by a newer answer (two concurrent fills: the later read wins).
            newer = f"({p}_as_of IS NULL OR {p}_as_of < ${n + 2})"
            sets += [
                f"{p}_status = CASE WHEN {newer} THEN ${n} ELSE {p}_status END",
                f"{p}_body = CASE WHEN {newer} THEN ${n + 1}::bytea ELSE {p}_body END",
                f"{p}_as_of = CASE WHEN {newer} THEN ${n + 2} ELSE {p}_as_of END",
            ]
            n += 3
        if with_survivor:
            sets.append(f"survivor_id = ${n}")
        # Only an existing row is filled: rows are made by the projection from the customer's events, and an
        # erasure deletes the row, so a fill racing an erasure finds nothing to write (no insert can slip in
        # after the delete).
        _FILL[key] = f"UPDATE gateway.customer_view_copy SET {', '.join(sets)} WHERE customer_id = $1"
    return _FILL[key]


async def fill(
    pool: asyncpg.Pool,
    customer_id: uuid.UUID,
    parts: dict[str, tuple[int, bytes, datetime]],
    survivor_id: uuid.UUID | None = None,
    set_survivor: bool = False,
) -> None:
    names = tuple(parts)
    args: list = [customer_id]
    for p in names:
        args += list(parts[p])
    if set_survivor:
        args.append(survivor_id)
    await pool.execute(_fill_sql(names, set_survivor), *args)


# --- the projection (inbox transaction) ---------------------------------------------------------------------

# An event about a customer: the row exists from now on (parts read before `at` are no longer served as
# fresh), and the owner versions carried by stage.changed / customer.value_updated are kept, greatest wins.
# Not for a customer erased before (the topics are not ordered with each other: R8). The rows are locked in the
# order given (sorted by the caller: concurrent batches lock in one order).
TOUCH = sa.text("""
INSERT INTO gateway.customer_view_copy AS v (customer_id, last_event_at, lifecycle_version, value_version)
SELECT t.id, :at, t.lifecycle_version, t.value_version
FROM unnest(CAST(:ids AS uuid[]), CAST(:lifecycle_versions AS bigint[]), CAST(:value_versions AS bigint[]))
     AS t(id, lifecycle_version, value_version)
WHERE NOT EXISTS (SELECT 1 FROM gateway.erased_customer e WHERE e.customer_id = t.id::text)
ON CONFLICT (customer_id) DO UPDATE SET
    last_event_at = GREATEST(v.last_event_at, EXCLUDED.last_event_at),
    lifecycle_version = GREATEST(v.lifecycle_version, EXCLUDED.lifecycle_version),
    value_version = GREATEST(v.value_version, EXCLUDED.value_version)
""")

# A merge or unmerge changes what every id resolving through these customers answers.
TOUCH_RESOLVING_TO = sa.text("""
UPDATE gateway.customer_view_copy SET last_event_at = GREATEST(last_event_at, :at)
WHERE survivor_id = ANY(CAST(:ids AS uuid[]))
""")

# Erasure (R8): the copy is a copy; the customer's row goes, and so do the rows of ids that resolved to them
# (their profile part is the erased customer's profile).
PART_CHANGED = sa.text("""
INSERT INTO gateway.view_part_changed AS c (part, changed_at) VALUES (:part, :at)
ON CONFLICT (part) DO UPDATE SET changed_at = GREATEST(c.changed_at, EXCLUDED.changed_at)
""")

FORGET = sa.text("""
DELETE FROM gateway.customer_view_copy
WHERE customer_id = ANY(CAST(:ids AS uuid[])) OR survivor_id = ANY(CAST(:ids AS uuid[]))
""")

REMEMBER_ERASED = sa.text("""
INSERT INTO gateway.erased_customer (customer_id) SELECT unnest(CAST(:keys AS text[])) ON CONFLICT DO NOTHING
""")
