"""Read sessions run each statement on its own (no BEGIN, no COMMIT); the usual sessions keep one transaction."""

import sqlalchemy as sa

from shared.db import make_engine, make_read_session_factory, make_session_factory

# now() is the start of the transaction: the same for every statement of one, new for a statement on its own.
NOW = sa.text("SELECT now()")


async def _one_transaction(factory) -> bool:
    async with factory() as session:
        first = (await session.execute(NOW)).scalar_one()
        await session.execute(sa.text("SELECT pg_sleep(0.01)"))
        second = (await session.execute(NOW)).scalar_one()
        await session.commit()
    return first == second


async def test_a_read_session_runs_each_statement_as_its_own_transaction_and_a_session_shares_one(database_url):
    engine = make_engine(database_url, pool_size=1)
    try:
        read, usual = make_read_session_factory(engine), make_session_factory(engine)
        # One pooled connection serves both kinds in turn: each gets its own mode back.
        assert [await _one_transaction(f) for f in (read, usual, read, usual)] == [False, True, False, True]
    finally:
        await engine.dispose()
