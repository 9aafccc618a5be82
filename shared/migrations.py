"""Alembic, once per service: each history lives in its service's package and is pinned to its schema.

The version table sits inside the service's schema, autogenerate only sees that schema, and an advisory
lock makes concurrent migration jobs (two replicas starting at once) run one after the other.
"""

import asyncio
import zlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


def alembic_config(migrations_dir: Path, schema: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(migrations_dir: Path, schema: str, database_url: str, revision: str = "head") -> None:
    """Blocking; from async code call it through `asyncio.to_thread` (env.py runs its own event loop)."""
    command.upgrade(alembic_config(migrations_dir, schema, database_url), revision)


def downgrade(migrations_dir: Path, schema: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, schema, database_url), revision)


def run_env(metadata: sa.MetaData) -> None:
    """The body of every service's `env.py`."""
    schema = context.config.attributes.get("schema") or metadata.schema
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "alembic_config sets sqlalchemy.url"

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return name == schema if type_ == "schema" else True

    def migrate(connection: sa.Connection) -> None:
        connection.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(f"migrate:{schema}".encode())})
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate)
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table_schema=schema, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run())
