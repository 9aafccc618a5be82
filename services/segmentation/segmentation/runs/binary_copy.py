"""Postgres binary COPY ↔ numpy structured arrays, for loading the aggregates and writing a run's results.

Every column is fixed-width and non-null (the queries coalesce), so each row of the binary COPY stream has
the same size and numpy reads or writes the whole stream at once: no per-row Python on a million customers.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
# timestamptz: microseconds since 2000-01-01 UTC (`pg_epoch_us`).
WIDTH = {
    "uuid": ("V16", 16),
    "int2": (">i2", 2),
    "int4": (">i4", 4),
    "int8": (">i8", 8),
    "float8": (">f8", 8),
    "timestamptz": (">i8", 8),
}
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# Rows per COPY chunk: a million rows are streamed, not held as one more copy of the whole stream.
CHUNK_ROWS = 25_000


def row_dtype(columns: list[tuple[str, str]]) -> np.dtype:
    fields: list[tuple[str, str]] = [("_count", ">i2")]
    for name, pg_type in columns:
        fields += [(f"_len_{name}", ">i4"), (name, WIDTH[pg_type][0])]
    return np.dtype(fields)


async def asyncpg_connection(session: AsyncSession):  # asyncpg.Connection
    """The raw asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    await connection.exec_driver_sql("SELECT 1")  # make sure the transaction has begun on this connection
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def copy_out(session: AsyncSession, query: str, columns: list[tuple[str, str]], *args: object) -> np.ndarray:
    """Run `query` (selecting exactly `columns`, none NULL) and return its rows as one structured array."""
    conn = await asyncpg_connection(session)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    data = b"".join(chunks)
    dtype = row_dtype(columns)
    header = 19 + int.from_bytes(data[15:19], "big")
    body = len(data) - header - len(TRAILER)
    if body % dtype.itemsize:
        raise ValueError("binary COPY rows are not fixed-width (a NULL or variable-width column?)")
    return np.frombuffer(data, dtype=dtype, offset=header, count=body // dtype.itemsize)


async def copy_in(
    session: AsyncSession,
    table: str,
    schema: str,
    columns: list[tuple[str, str]],
    values: dict[str, np.ndarray | np.generic],
    n: int,
) -> None:
    """Write n rows (each column an array, or a scalar broadcast) with one binary COPY."""
    dtype = row_dtype(columns)

    def chunks() -> Iterator[bytes]:
        for start in range(0, n, CHUNK_ROWS):
            stop = min(n, start + CHUNK_ROWS)
            rows = np.zeros(stop - start, dtype=dtype)
            rows["_count"] = len(columns)
            for name, pg_type in columns:
                rows[f"_len_{name}"] = WIDTH[pg_type][1]
                value = values[name]
                rows[name] = value[start:stop] if isinstance(value, np.ndarray) and value.ndim else value
            yield rows.tobytes()

    await copy_rows(session, table, schema, [c for c, _ in columns], chunks())


async def copy_rows(session: AsyncSession, table: str, schema: str, columns: list[str], rows: Iterable[bytes]) -> None:
    """One binary COPY of rows already encoded (each chunk whole rows), streamed chunk by chunk. The next chunk
    is built in a worker thread while Postgres takes in the current one (numpy releases the GIL as it copies)."""
    conn = await asyncpg_connection(session)
    chunks = iter(rows)

    async def stream() -> AsyncIterator[bytes]:
        yield SIGNATURE
        upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
        while (chunk := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
            yield chunk
        yield TRAILER

    await conn.copy_to_table(table, schema_name=schema, columns=columns, source=stream(), format="binary")


def pg_epoch_us(moment: datetime) -> int:
    """A timestamptz's binary value."""
    return (moment - PG_EPOCH) // timedelta(microseconds=1)


def uuid_bytes(value: uuid.UUID) -> np.void:
    return np.void(value.bytes)


def uuids(values: np.ndarray) -> list[uuid.UUID]:
    return [uuid.UUID(bytes=bytes(v)) for v in values]
