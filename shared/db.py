"""Async engine, one session per request, and the constraint naming convention every schema uses."""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """Metadata for one service: every table in the service's own schema, constraints named by convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


# A pooled connection idle longer than this is pinged before use (`_ping_if_idle`).
PING_AFTER_IDLE_S = 1.0


def make_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """An engine whose pool opens up to `pool_size` connections, as they are needed, and keeps them.

    No overflow: a connection past a pool's size is closed as soon as it is returned while the pool is full, so a
    load whose concurrency hovers above the size opens and closes one connection after another, each a new
    PostgreSQL backend, an authentication, and its statements prepared again. Under `bench gateway` (32
    connections reading lifecycle's stage) `asyncpg.connect` was 3% of lifecycle's samples with a pool of 10
    and 10 overflow. The same at most `pool_size` connections, kept open (until `pool_recycle`)."""
    # hide_parameters: a failed statement's error (and so every log line of it) names the statement, never
    # its values — they include API key hashes, webhook secrets and personal data.
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, hide_parameters=True)
    event.listen(engine.sync_engine, "handle_error", _drop_row_values)
    event.listen(engine.sync_engine.pool, "checkin", _note_checkin)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """After a Postgres restart the first request gets a fresh connection instead of an error — without a round
    trip on every checkout, as `pool_pre_ping` pays (~250 µs of CPU a checkout, measured: a third of a simple
    request's database cost). A connection back in the pool less than `PING_AFTER_IDLE_S` ago was working then;
    one that dies in that window fails its statement once, and SQLAlchemy then renews every older connection of
    the pool (a disconnect invalidates the pool), so the ones after it reconnect. Raising `DisconnectionError`
    here makes the pool replace this connection and check out again."""
    checked_in = record.info.get("checked_in_at")
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError("the pooled connection did not answer a ping") from exc


def _drop_row_values(context: ExceptionContext) -> None:
    """Postgres repeats the offending values in an error's DETAIL ("Key (key_hash)=(\\x…) already exists",
    "Failing row contains (…)"), and asyncpg prints DETAIL in the exception's text, which tracebacks in the
    logs show. The message and the constraint's name stay; the values go."""
    exc: BaseException | None = context.original_exception
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(getattr(exc, "detail", None), str):
            exc.detail = None  # type: ignore[attr-defined]
        exc = exc.__cause__ or exc.__context__


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool, with each statement its own transaction: no BEGIN, COMMIT or ROLLBACK.

    For work that only reads (and the outbox relay's single-statement writes). Under READ COMMITTED, PostgreSQL's
    level here, every statement takes its own snapshot inside a transaction too, so such a read sees exactly
    what it would in one; without it a one-statement read is one round trip instead of three (`python -m bench
    read_round_trips`). Never for work whose statements must commit together, hold a lock or `SET LOCAL`.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for endpoints that only read (`ReadSessionDep`): on `autocommit(engine)`."""
    return async_sessionmaker(autocommit(engine), expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed once when the endpoint returns, rolled back if it raises."""
    session_factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with session_factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit runs before the response is sent, so a 2xx always means "durable".
# (FastAPI's default scope would commit after the response has gone out.)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request that only reads: each statement on its own (`autocommit`), nothing to commit."""
    session_factory: async_sessionmaker[AsyncSession] = request.app.state.read_session_factory
    async with session_factory() as session:
        yield session


# For GET endpoints that never write: a write through it would commit statement by statement.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's (checked out for it, in its transaction if it has one).

    For the hottest reads: a statement sent on it skips SQLAlchemy's work per statement (the parameters, the
    result's metadata, greenlet switches). The two lookups of the GET of a customer's lifecycle cost this
    process 398 µs of CPU this way against 611 through SQLAlchemy (`python -m bench read_round_trips`, which
    runs both side by side). Statements take `$1`-style parameters and return asyncpg records
    (jsonb decoded by the codec SQLAlchemy sets on its connections)."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN, for the raw asyncpg connections (LISTEN, advisory locks)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
