import pytest
import sqlalchemy as sa

from shared.db import make_engine
from tests.services.conftest import serving

from interaction.app import create_app
from interaction.settings import InteractionSettings


@pytest.fixture
async def client(database_url):
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    async with serving(create_app(settings)) as c:
        yield c


@pytest.fixture
async def engine(database_url):
    e = make_engine(database_url)
    yield e
    await e.dispose()


async def outbox_events(engine, type_: str | None = None) -> list[dict]:
    """Published events (the outbox rows), oldest first, as parsed CloudEvents."""
    async with engine.connect() as conn:
        rows = (
            (await conn.execute(sa.text("select convert_from(payload, 'UTF8')::jsonb from interaction.outbox order by id")))
            .scalars()
            .all()
        )
    return [r for r in rows if type_ is None or r["type"] == type_]


async def customer_of(engine, subject: str, source: str = "shop-eu"):
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "select customer_id from interaction.customer_identifier where kind='source' and source=:s and external_id=:e"
                ),
                {"s": source, "e": subject},
            )
        ).scalar()


async def trust(client, *partners: str) -> None:
    """Register partners whose emails and phones may link customers (off for partners nobody registered)."""
    for partner_id in partners:
        resp = await client.post(
            "/v1/partners", json={"id": partner_id, "name": partner_id, "kind": "retailer", "trust_contact_linking": True}
        )
        assert resp.status_code == 201, resp.text
