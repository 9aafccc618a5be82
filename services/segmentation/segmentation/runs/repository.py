"""Runs' queries: the run rows, their per-customer results, the aggregates a run loads and the segments it writes
(service.py decides when: claiming, restarts, scoring)."""

import json
import uuid
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from segmentation.runs.binary_copy import copy_out

# A run joins and anti-joins ~n rows: give its transactions room to hash in memory instead of spilling.
RUN_WORK_MEM = "256MB"

AGGREGATE_COLUMNS = [
    ("customer_id", "uuid"),
    ("last_purchase", "float8"),
    ("frequency", "int4"),
    ("monetary", "float8"),
    ("first_seen", "float8"),
    ("touchpoints", "int4"),
    ("clv", "float8"),
    ("tier", "int4"),
]
# Customers with at least one purchase that counts; monetary in the run's currency (0 when none in it).
# Epochs with date_part (float8 arithmetic), not extract (numeric, then cast): the same doubles — microseconds
# below 2^53 divided by 1e6, correctly rounded either way — for ~1/4 less of the load query's time.
AGGREGATE_QUERY = """
SELECT a.customer_id, date_part('epoch', a.last_purchase_at), a.order_count::int4,
       coalesce(ps.total_spend, 0)::float8,
       date_part('epoch', least(a.first_purchase_at, a.first_touch_at)),
       a.touchpoint_count::int4, coalesce(a.clv, 'NaN')::float8,
       coalesce(array_position($2::text[], a.value_tier), 0)::int4
FROM segmentation.customer_aggregate a
LEFT JOIN segmentation.purchase_summary ps ON ps.customer_id = a.customer_id AND ps.currency = $1
WHERE a.order_count > 0
"""

# Tiers runs also load each customer's value on the portfolio's value axis, in its own currency: the CLV the clv
# service published (in its currency), else revenue to date in the currency the customer spent most in
# (ties: alphabetical). Currency as its 1-based position in $3, basis 1 = clv, 2 = revenue (0: none).
VALUE_COLUMNS = [("value", "float8"), ("value_currency", "int4"), ("value_basis", "int4")]
VALUE_QUERY = AGGREGATE_QUERY.replace(
    """
FROM segmentation.customer_aggregate a""",
    """,
       coalesce(a.clv, main.total_spend, 0)::float8,
       coalesce(array_position($3::text[], coalesce(rtrim(a.clv_currency), main.currency)), 0)::int4,
       (CASE WHEN a.clv IS NOT NULL THEN 1 WHEN main.currency IS NOT NULL THEN 2 ELSE 0 END)::int4
FROM segmentation.customer_aggregate a
LEFT JOIN LATERAL (SELECT m.currency, m.total_spend FROM segmentation.purchase_summary m
                   WHERE m.customer_id = a.customer_id AND a.clv IS NULL
                   ORDER BY m.total_spend DESC, m.currency LIMIT 1) main ON true""",
)
assert VALUE_QUERY != AGGREGATE_QUERY


async def tune_for_run(session: AsyncSession, *, hash_joins: bool = False) -> None:
    """For the rest of the transaction: `RUN_WORK_MEM` for the run's joins and, with `hash_joins`, no nested loops."""
    await session.execute(sa.text(f"SET LOCAL work_mem = '{RUN_WORK_MEM}'"))
    if hash_joins:
        await session.execute(sa.text("SET LOCAL enable_nestloop = off"))


async def value_tiers(session: AsyncSession) -> list[str]:
    """The CLV value tiers customers are in, in order (a customer's tier is its position here, 1-based)."""
    return list(
        (
            await session.execute(
                sa.text(
                    "SELECT DISTINCT value_tier FROM segmentation.customer_aggregate WHERE value_tier IS NOT NULL "
                    "ORDER BY value_tier"
                )
            )
        )
        .scalars()
        .all()
    )


async def value_currencies(session: AsyncSession) -> list[str]:
    """Every currency a customer's value can be in (CLVs' and purchases'), in order (`VALUE_QUERY`'s $3)."""
    return list(
        (
            await session.execute(
                sa.text(
                    "SELECT rtrim(clv_currency) FROM segmentation.customer_aggregate WHERE clv_currency IS NOT NULL "
                    "UNION SELECT currency FROM segmentation.purchase_summary ORDER BY 1"
                )
            )
        )
        .scalars()
        .all()
    )


async def aggregate_rows(
    session: AsyncSession, currency: str, tiers: list[str], currencies: list[str] | None = None
) -> np.ndarray:
    """The aggregates of the customers with a purchase (`AGGREGATE_COLUMNS`), one binary COPY; with `currencies`,
    their values too (`VALUE_COLUMNS`)."""
    if currencies is None:
        return await copy_out(session, AGGREGATE_QUERY, AGGREGATE_COLUMNS, currency, tiers)
    return await copy_out(session, VALUE_QUERY, AGGREGATE_COLUMNS + VALUE_COLUMNS, currency, tiers, currencies)


async def run(session: AsyncSession, run_id: uuid.UUID) -> sa.RowMapping | None:
    """The run's row."""
    return (
        (await session.execute(sa.text("SELECT * FROM segmentation.segmentation_run WHERE run_id = :id"), {"id": run_id}))
        .mappings()
        .first()
    )


async def unfinished(session: AsyncSession, family: str) -> sa.Row | None:
    """A queued or running run of the family (run_id, status), if any."""
    return (
        await session.execute(
            sa.text("""
            SELECT run_id, status FROM segmentation.segmentation_run
            WHERE family = :family AND status IN ('queued', 'running') LIMIT 1"""),
            {"family": family},
        )
    ).first()


async def insert_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    kind: str,
    family: str,
    params: dict,
    as_of: datetime,
    trigger: str,
) -> sa.RowMapping:
    """The new queued run's row (the partial unique index on unfinished runs per family may refuse it)."""
    return (
        (
            await session.execute(
                sa.text("""
            INSERT INTO segmentation.segmentation_run (run_id, kind, family, status, params, as_of, trigger)
            VALUES (:id, :kind, :family, 'queued', CAST(:params AS jsonb), :as_of, :trigger) RETURNING *"""),
                {
                    "id": run_id,
                    "kind": kind,
                    "family": family,
                    "params": json.dumps(params),
                    "as_of": as_of,
                    "trigger": trigger,
                },
            )
        )
        .mappings()
        .one()
    )


async def queued(session: AsyncSession) -> list[uuid.UUID]:
    """The queued runs' ids, oldest first."""
    return list(
        (
            await session.execute(
                sa.text("SELECT run_id FROM segmentation.segmentation_run WHERE status = 'queued' ORDER BY created_at")
            )
        )
        .scalars()
        .all()
    )


async def set_progress(session: AsyncSession, run_id: uuid.UUID, progress: float, **fields: Any) -> None:
    """Sets the run's progress, and the columns named in `fields` to their values."""
    sets = ", ".join(f"{k} = :{k}" for k in fields)
    await session.execute(
        sa.text(
            f"UPDATE segmentation.segmentation_run SET progress = :progress, updated_at = now()"
            f"{', ' + sets if sets else ''} WHERE run_id = :id"
        ),
        {"id": run_id, "progress": progress, **fields},
    )


async def succeed(session: AsyncSession, run_id: uuid.UUID, result: dict) -> None:
    """Marks the run succeeded with its result."""
    await session.execute(
        sa.text("""
        UPDATE segmentation.segmentation_run SET status = 'succeeded', progress = 1, result = CAST(:result AS jsonb),
            finished_at = now(), updated_at = now() WHERE run_id = :id"""),
        {"id": run_id, "result": json.dumps(result, default=str)},
    )


async def discard_results(session: AsyncSession, run_id: uuid.UUID) -> None:
    """Deletes a failed run's per-customer results (they commit on their own, before the run's transaction)."""
    await session.execute(sa.text("DELETE FROM segmentation.run_result WHERE run_id = :id"), {"id": run_id})


async def prune_results(session: AsyncSession, family: str, keep: int) -> None:
    """Deletes the per-customer results of the family's succeeded runs but the `keep` latest."""
    await session.execute(
        sa.text("""
        DELETE FROM segmentation.run_result WHERE run_id IN (
            SELECT run_id FROM segmentation.segmentation_run WHERE family = :family AND status = 'succeeded'
            ORDER BY finished_at DESC OFFSET :keep)"""),
        {"family": family, "keep": keep},
    )


async def definitions(session: AsyncSession, family: str) -> list[Any]:
    """The definitions of the family's segments."""
    return list(
        (await session.execute(sa.text("SELECT definition FROM segmentation.segment WHERE family = :family"), {"family": family}))
        .scalars()
        .all()
    )


async def upsert_segments(session: AsyncSession, ids: list[uuid.UUID], segments: list[dict]) -> None:
    """Inserts the segments (key, kind, family, name, description?, definition?) with their ids, or updates the
    name, description and definition of those whose key exists."""
    await session.execute(
        sa.text("""
        INSERT INTO segmentation.segment AS s (segment_id, key, kind, family, name, description, definition)
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:keys AS text[]), CAST(:kinds AS text[]),
                             CAST(:families AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
                             CAST(:definitions AS jsonb[]))
        ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
            definition = EXCLUDED.definition, updated_at = now()"""),
        {
            "ids": ids,
            "keys": [s["key"] for s in segments],
            "kinds": [s["kind"] for s in segments],
            "families": [s["family"] for s in segments],
            "names": [s["name"] for s in segments],
            "descriptions": [s.get("description") for s in segments],
            "definitions": [json.dumps(s.get("definition")) for s in segments],
        },
    )


async def write_summaries(session: AsyncSession, run_id: uuid.UUID, summaries: dict[uuid.UUID, dict]) -> None:
    """Sets each segment's summary (by segment id) and the run that last wrote it."""
    await session.execute(
        sa.text("""
        UPDATE segmentation.segment s SET summary = CAST(v.summary AS jsonb), last_run_id = :run_id, updated_at = now()
        FROM unnest(CAST(:ids AS uuid[]), CAST(:summaries AS text[])) AS v(segment_id, summary)
        WHERE s.segment_id = v.segment_id"""),
        {"run_id": run_id, "ids": list(summaries), "summaries": [json.dumps(s) for s in summaries.values()]},
    )


async def page(
    session: AsyncSession, *, kind: str | None, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[sa.RowMapping]:
    """Runs newest first, those after the cursor's (created_at, run_id)."""
    query = "SELECT * FROM segmentation.segmentation_run WHERE (CAST(:kind AS text) IS NULL OR kind = :kind)"
    params: dict = {"kind": kind, "limit": limit}
    if before:
        query += " AND (created_at, run_id::text) < (CAST(:ts AS timestamptz), :rid)"
        params.update(ts=before[0], rid=str(before[1]))
    return list(
        (await session.execute(sa.text(query + " ORDER BY created_at DESC, run_id::text DESC LIMIT :limit"), params)).mappings()
    )


async def has_results(session: AsyncSession, run_id: uuid.UUID) -> bool:
    """Whether the run's per-customer results are still kept (only the last few runs of a family keep them)."""
    return (
        await session.execute(sa.text("SELECT 1 FROM segmentation.run_result WHERE run_id = :id LIMIT 1"), {"id": run_id})
    ).first() is not None


async def transitions(session: AsyncSession, base_run_id: uuid.UUID, run_id: uuid.UUID) -> list[sa.Row]:
    """Customers per (segment in the base run, segment in the other run); None where a customer is in one only."""
    return list(
        (
            await session.execute(
                sa.text("""
        WITH a AS (SELECT r.customer_id, s.key, s.family FROM segmentation.run_result r
                   JOIN segmentation.segment s ON s.segment_id = r.segment_id WHERE r.run_id = :a),
             b AS (SELECT r.customer_id, s.key, s.family FROM segmentation.run_result r
                   JOIN segmentation.segment s ON s.segment_id = r.segment_id WHERE r.run_id = :b)
        SELECT a.key AS from_key, b.key AS to_key, count(*) AS n
        FROM a FULL JOIN b ON a.customer_id = b.customer_id AND a.family = b.family
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"""),
                {"a": base_run_id, "b": run_id},
            )
        ).all()
    )
