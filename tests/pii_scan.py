"""Where personal data still sits in the database: every text, JSON and bytea column of every table of every schema.

    hits = await find_pii(database_url, ["ada@example.com", "+442079460958", "Ada Lovelace"])

A hit is (schema, table, column, row key): the row key is the primary key's values (or the ctid for a table
without one). Matching is a case-insensitive substring match, on the text form of the column: JSON and
arrays as their text, bytea decoded as UTF-8 (outbox rows and webhook deliveries hold JSON bytes), so a
needle hides nowhere a person could read it back. The erasure tests scan with it; so can any other test.
"""

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import make_engine

Hit = tuple[str, str, str, str]
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_TEXTUAL = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY", "USER-DEFINED", "name")

COLUMNS = sa.text(f"""
SELECT c.table_schema, c.table_name, c.column_name, c.data_type
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN {SYSTEM_SCHEMAS}
  AND c.table_schema NOT LIKE 'pg_temp%' AND c.data_type = ANY(CAST(:types AS text[]))
ORDER BY 1, 2, 3
""")
PRIMARY_KEYS = sa.text("""
SELECT kcu.table_schema, kcu.table_name, array_agg(kcu.column_name::text ORDER BY kcu.ordinal_position) AS columns
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
WHERE tc.constraint_type = 'PRIMARY KEY'
GROUP BY 1, 2
""")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_text(column: str, data_type: str) -> str:
    quoted = _quote(column)
    if data_type == "bytea":
        # convert_from fails on bytes that are not UTF-8; such bytes are searched as escaped text instead.
        return f"encode({quoted}, 'escape')"
    return f"CAST({quoted} AS text)"


async def find_pii(conn_or_url: str | AsyncEngine | AsyncConnection, needles: list[str]) -> list[Hit]:
    """Every (schema, table, column, row key) whose value contains one of the needles (case-insensitive)."""
    needles = [n for n in needles if n]
    if not needles:
        return []
    if isinstance(conn_or_url, str):
        engine = make_engine(conn_or_url)
        try:
            async with engine.connect() as conn:
                return await _scan(conn, needles)
        finally:
            await engine.dispose()
    if isinstance(conn_or_url, AsyncEngine):
        async with conn_or_url.connect() as conn:
            return await _scan(conn, needles)
    return await _scan(conn_or_url, needles)


async def _scan(conn: AsyncConnection, needles: list[str]) -> list[Hit]:
    columns = (await conn.execute(COLUMNS, {"types": list(_TEXTUAL)})).all()
    keys = {(r.table_schema, r.table_name): list(r.columns) for r in await conn.execute(PRIMARY_KEYS)}
    # bytea in escape form shows non-ASCII bytes as \ooo, so needles are compared in that form too.
    patterns = [n.lower() for n in needles]
    hits: list[Hit] = []
    for schema, table, column, data_type in columns:
        key_cols = keys.get((schema, table)) or ["ctid"]
        key_expr = " || '/' || ".join(f"coalesce(CAST({_quote(k)} AS text), '')" for k in key_cols)
        text = _as_text(column, data_type)
        sql = f"SELECT {key_expr} AS k FROM {_quote(schema)}.{_quote(table)} WHERE lower({text}) LIKE ANY(CAST(:likes AS text[]))"
        likes = ["%" + p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for p in patterns]
        try:
            rows = (await conn.execute(sa.text(sql), {"likes": likes})).all()
        except (sa.exc.DBAPIError, asyncpg.PostgresError) as exc:  # pragma: no cover - a column type we cannot read
            raise RuntimeError(f"cannot scan {schema}.{table}.{column} ({data_type}): {exc}") from exc
        hits.extend((schema, table, column, r.k) for r in rows)
    return hits


def phone_forms(e164: str, *given: str) -> list[str]:
    """The forms a phone number is written in: E.164, without the plus, with 00, and as given."""
    digits = e164.lstrip("+")
    return list(dict.fromkeys([e164, digits, "00" + digits, *given]))
