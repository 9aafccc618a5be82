"""Identity queries: set-based, fixed-shape statements over arrays (one round trip per batch, not per event)."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from interaction.identity.normalise import IdentifierKey

# Ingestion of one batch (identity resolution, merges) runs under this transaction lock, so two batches never
# race to mint or merge the same customer. Reads do not take it.
IDENTITY_LOCK = 0x1D_E7_17_70


async def lock_identity(session: AsyncSession) -> None:
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": IDENTITY_LOCK})


NEXT_VERSIONS = sa.text("SELECT nextval('interaction.identity_version_seq') FROM generate_series(1, :n)")


async def next_versions(session: AsyncSession, n: int) -> list[int]:
    """`n` identity versions for merges and unmerges published now. Drawn under the identity lock, which is held
    to the commit, so they increase in the order identity changes commit (shared/contracts/identity.py)."""
    if n <= 0:
        return []
    return sorted((await session.execute(NEXT_VERSIONS, {"n": n})).scalars().all())


FIND = sa.text("""
SELECT i.kind, i.source, i.external_id, i.customer_id, i.home_customer_id, c.first_seen_at
FROM unnest(CAST(:kinds AS text[]), CAST(:sources AS text[]), CAST(:external_ids AS text[])) AS k(kind, source, external_id)
JOIN interaction.customer_identifier i USING (kind, source, external_id)
JOIN interaction.customer c ON c.id = i.customer_id
""")


async def find(session: AsyncSession, keys: list[IdentifierKey]) -> dict[IdentifierKey, tuple[uuid.UUID, uuid.UUID, datetime]]:
    """Known keys → (live customer id, home customer id, the live customer's first_seen_at)."""
    if not keys:
        return {}
    rows = await session.execute(
        FIND, {"kinds": [k[0] for k in keys], "sources": [k[1] for k in keys], "external_ids": [k[2] for k in keys]}
    )
    return {(r.kind, r.source, r.external_id): (r.customer_id, r.home_customer_id, r.first_seen_at) for r in rows}


INSERT_CUSTOMERS = sa.text("""
INSERT INTO interaction.customer (id, first_seen_at)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:first_seen AS timestamptz[]))
""")
INSERT_IDENTIFIERS = sa.text("""
INSERT INTO interaction.customer_identifier (kind, source, external_id, customer_id, home_customer_id)
SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:sources AS text[]), CAST(:external_ids AS text[]),
                     CAST(:customer_ids AS uuid[]), CAST(:homes AS uuid[]))
ON CONFLICT DO NOTHING
""")


async def insert_customers(session: AsyncSession, first_seen: dict[uuid.UUID, datetime]) -> None:
    if first_seen:
        await session.execute(INSERT_CUSTOMERS, {"ids": list(first_seen), "first_seen": list(first_seen.values())})


async def insert_identifiers(session: AsyncSession, rows: dict[IdentifierKey, tuple[uuid.UUID, uuid.UUID]]) -> None:
    if rows:
        await session.execute(
            INSERT_IDENTIFIERS,
            {
                "kinds": [k[0] for k in rows],
                "sources": [k[1] for k in rows],
                "external_ids": [k[2] for k in rows],
                "customer_ids": [v[0] for v in rows.values()],
                "homes": [v[1] for v in rows.values()],
            },
        )


BLOCKED = sa.text("""
SELECT survivor_id, merged_id FROM interaction.customer_merge
WHERE undone_at IS NOT NULL AND survivor_id = ANY(CAST(:ids AS uuid[])) AND merged_id = ANY(CAST(:ids AS uuid[]))
""")


async def blocked_pairs(session: AsyncSession, ids: list[uuid.UUID]) -> set[frozenset]:
    """Pairs of customers a user has unmerged: they are not merged again automatically."""
    if len(ids) < 2:
        return set()
    return {frozenset((r.survivor_id, r.merged_id)) for r in await session.execute(BLOCKED, {"ids": ids})}


# --- merging: every statement takes the batch's merges as parallel arrays (id, survivor, merged, reason, caused by:
# a JSON array per merge, as an array of arrays cannot be unnested row by row) ----------------------------------

_MERGES = "unnest(CAST(:merge_ids AS uuid[]), CAST(:survivors AS uuid[]), CAST(:merged AS uuid[]))"
MERGE_STATEMENTS = [
    sa.text("""
    INSERT INTO interaction.customer_merge (id, survivor_id, merged_id, reason, merged_at, caused_by, snapshot)
    SELECT m.id, m.survivor, m.merged, m.reason, now(),
           ARRAY(SELECT jsonb_array_elements_text(CAST(m.caused_by AS jsonb))), coalesce((
        SELECT jsonb_agg(jsonb_build_object('kind', p.kind, 'key', p.key, 'value', p.value, 'value_type', p.value_type,
                                            'source', p.source, 'occurred_at', p.occurred_at,
                                            'filled_by_merge_id', p.filled_by_merge_id))
        FROM interaction.customer_property p WHERE p.customer_id = m.merged), '[]'::jsonb)
    FROM unnest(CAST(:merge_ids AS uuid[]), CAST(:survivors AS uuid[]), CAST(:merged AS uuid[]),
                CAST(:reasons AS text[]), CAST(:caused_by AS text[])) AS m(id, survivor, merged, reason, caused_by)
    """),
    # Survivor's values win; keys it lacks are filled from the merged customer (and remembered, for the undo).
    sa.text(f"""
    INSERT INTO interaction.customer_property (customer_id, kind, key, value, value_type, source, occurred_at,
                                               filled_by_merge_id)
    SELECT m.survivor, p.kind, p.key, p.value, p.value_type, p.source, p.occurred_at, m.id
    FROM {_MERGES} AS m(id, survivor, merged) JOIN interaction.customer_property p ON p.customer_id = m.merged
    ON CONFLICT DO NOTHING
    """),
    sa.text("DELETE FROM interaction.customer_property WHERE customer_id = ANY(CAST(:merged AS uuid[]))"),
    sa.text("DELETE FROM interaction.customer_spend WHERE customer_id = ANY(CAST(:merged AS uuid[]))"),
    *[
        sa.text(f"""
    UPDATE interaction.{table} t SET customer_id = m.survivor, updated_at = now()
    FROM {_MERGES} AS m(id, survivor, merged) WHERE t.customer_id = m.merged
    """)
        for table in ["customer_identifier", "purchase", "purchase_adjustment", "activity", "deal"]
    ],
    sa.text(f"""
    UPDATE interaction.customer c SET merged_into = m.survivor, purchase_count = 0, updated_at = now()
    FROM {_MERGES} AS m(id, survivor, merged) WHERE c.id = m.merged
    """),
]


async def merge(session: AsyncSession, merges: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str, list[str]]]) -> None:
    """Fold each merged customer into its survivor: (merge id, survivor, merged, reason, partners that caused it)."""
    if not merges:
        return
    params = {
        "merge_ids": [m[0] for m in merges],
        "survivors": [m[1] for m in merges],
        "merged": [m[2] for m in merges],
        "reasons": [m[3] for m in merges],
        "caused_by": [orjson.dumps(m[4]).decode() for m in merges],
    }
    for statement in MERGE_STATEMENTS:
        await session.execute(statement, params)


LIVE = sa.text("""
WITH RECURSIVE chain(id, merged_into, depth) AS (
    SELECT id, merged_into, 0 FROM interaction.customer WHERE id = :id
    UNION ALL
    SELECT c.id, c.merged_into, chain.depth + 1 FROM interaction.customer c JOIN chain ON c.id = chain.merged_into
    WHERE chain.depth < 100
)
SELECT id FROM chain WHERE merged_into IS NULL
""")


async def live_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID | None:
    """The customer an id stands for now: itself, or the survivor of the merges it went through."""
    return (await session.execute(LIVE, {"id": customer_id})).scalar()


HOMES = sa.text("""
WITH RECURSIVE homes(id) AS (
    SELECT CAST(:id AS uuid)
    UNION
    SELECT m.merged_id FROM interaction.customer_merge m JOIN homes ON m.survivor_id = homes.id
    WHERE m.undone_at IS NULL
)
SELECT id FROM homes
""")


async def homes(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The customer and every customer merged into it (transitively) by merges still in force."""
    return list((await session.execute(HOMES, {"id": customer_id})).scalars())


async def unmerge(session: AsyncSession, merge_row: sa.Row, live: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Send the merged customer's rows back by their home; returns (purchase ids, touchpoint ids) moved.

    Every row then belongs to the live end of its home's chain of merges in force, as after a merge: the rule
    copies follow with the home each fact's event carries (shared/contracts/identity.py)."""
    restored = merge_row.merged_id
    home_ids = await homes(session, restored)
    params = {"live": live, "restored": restored, "homes": home_ids}
    moved: dict[str, Sequence[sa.Row]] = {}
    for table in ["customer_identifier", "purchase", "purchase_adjustment", "activity", "deal"]:
        returning = {"purchase": " RETURNING id", "activity": " RETURNING id, type"}.get(table, "")
        result = await session.execute(
            sa.text(
                f"UPDATE interaction.{table} SET customer_id = :restored, updated_at = now() "
                f"WHERE customer_id = :live AND home_customer_id = ANY(CAST(:homes AS uuid[])){returning}"
            ),
            params,
        )
        if returning:
            moved[table] = result.all()
    await session.execute(
        sa.text("DELETE FROM interaction.customer_property WHERE customer_id = :live AND filled_by_merge_id = :merge_id"),
        {"live": live, "merge_id": merge_row.id},
    )
    await session.execute(
        sa.text("""
        INSERT INTO interaction.customer_property (customer_id, kind, key, value, value_type, source, occurred_at,
                                                   filled_by_merge_id)
        SELECT :restored, p->>'kind', p->>'key', p->'value', p->>'value_type', p->>'source',
               CAST(p->>'occurred_at' AS timestamptz), CAST(p->>'filled_by_merge_id' AS uuid)
        FROM jsonb_array_elements(CAST(:snapshot AS jsonb)) AS p
        ON CONFLICT DO NOTHING
    """),
        {"restored": restored, "snapshot": orjson.dumps(merge_row.snapshot).decode()},
    )
    await session.execute(
        sa.text("UPDATE interaction.customer SET merged_into = NULL, updated_at = now() WHERE id = :restored"), params
    )
    await session.execute(
        sa.text("UPDATE interaction.customer_merge SET undone_at = now(), updated_at = now() WHERE id = :id"),
        {"id": merge_row.id},
    )
    purchases = [r.id for r in moved["purchase"]]
    touchpoints = [r.id for r in moved["activity"] if r.type == "interaction.logged"]
    return purchases, touchpoints
