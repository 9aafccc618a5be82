"""Claims of the same events by two transactions at once (the Kafka door and the HTTP door of interaction, two
replicas of a consumer) never deadlock: every claim inserts its keys in one order."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import claim

from segmentation.tables import messaging as segmentation_tables


async def _claim_together(
    factory: async_sessionmaker[AsyncSession], started: asyncio.Barrier, keys: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    async with factory() as session, session.begin():
        await session.connection()  # BEGIN sent: both statements start together
        await started.wait()
        return await claim(session, segmentation_tables.inbox, "segmentation.test", keys)


async def test_two_transactions_claiming_the_same_keys_in_opposite_orders_both_finish(database_url):
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        for round_ in range(3):
            keys = [(f"partner-{i % 7}", f"r{round_}-e{i}") for i in range(4000)]
            started = asyncio.Barrier(2)
            # Unordered, the two inserts met in the middle, each waiting for a key the other held.
            first, second = await asyncio.gather(
                _claim_together(factory, started, keys), _claim_together(factory, started, keys[::-1])
            )
            assert first | second == set(keys)
            assert not first & second  # each key claimed by exactly one of them
    finally:
        await engine.dispose()
