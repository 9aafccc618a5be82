"""Async engine, one session per request, and the constraint naming convention every schema uses."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData, make_url, text
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


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    # pool_pre_ping: after a Postgres restart the first request gets a fresh connection instead of an error.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


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


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq DSN, for the raw asyncpg connections (LISTEN, advisory locks)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
