"""The pool after its connections died (a Postgres restart): a connection idle for a while is pinged and
replaced before use, so the first request after the restart does not fail."""

import asyncio

import pytest
import sqlalchemy as sa

from shared import db


async def backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()


async def kill(engine, pid: int) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.parametrize("idle_long_enough", [True, False])
async def test_an_idle_connection_that_died_is_replaced_before_use(database_url, monkeypatch, idle_long_enough):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.2)
    engine, other = db.make_engine(database_url, pool_size=1), db.make_engine(database_url, pool_size=1)
    try:
        pid = await backend_pid(engine)
        await kill(other, pid)
        await asyncio.sleep(0.5 if idle_long_enough else 0.0)
        if idle_long_enough:
            assert await backend_pid(engine) != pid
        else:
            # Back in the pool a moment ago: used without a ping, it fails once, and the pool renews it.
            with pytest.raises(sa.exc.DBAPIError):
                await backend_pid(engine)
            assert await backend_pid(engine) != pid
    finally:
        await engine.dispose()
        await other.dispose()
