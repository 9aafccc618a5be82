"""Undoing a merge whose survivor sits at the end of a chain of merges deeper than identity resolution follows."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.services.interaction.conftest import customer_of
from tests.services.interaction.events import order

# interaction.identity.repository.LIVE follows a customer's merges 100 deep: one more and it resolves to nothing.
DEPTH = 101


async def test_undo_of_a_merge_whose_survivor_cannot_be_resolved_is_a_404_that_changes_nothing(client, engine):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    resp = await client.post(
        "/v1/events", json=[order(f"Z-{i}", f"Z-O-{i}", at=(start + timedelta(days=i)).isoformat()) for i in range(DEPTH + 2)]
    )
    assert resp.status_code == 200, resp.text
    ids = [await customer_of(engine, f"Z-{i}") for i in range(DEPTH + 2)]
    # Each newer customer into the next older one: the first merge's survivor ends up DEPTH merges from live.
    merge_ids = []
    for i in range(DEPTH + 1, 0, -1):
        merged = await client.post("/v1/merges", json={"customer_ids": [str(ids[i]), str(ids[i - 1])]})
        assert merged.status_code == 201, merged.text
        assert merged.json()["survivor_id"] == str(ids[i - 1])
        merge_ids.append(merged.json()["id"])
    assert (await client.get(f"/v1/customers/{ids[DEPTH]}")).status_code == 404  # unresolvable already

    undo = await client.post(f"/v1/merges/{merge_ids[0]}/undo")
    assert undo.status_code == 404, undo.text
    assert undo.headers["content-type"].startswith("application/problem+json")
    async with engine.connect() as conn:
        # The merge stands: not marked undone, the merged customer still folded into its survivor.
        assert (
            await conn.execute(sa.text("select undone_at from interaction.customer_merge where id = :id"), {"id": merge_ids[0]})
        ).scalar() is None
        assert (
            await conn.execute(sa.text("select merged_into from interaction.customer where id = :id"), {"id": ids[DEPTH + 1]})
        ).scalar() == ids[DEPTH]
    # The merge nearest the live end still undoes as before.
    assert (await client.post(f"/v1/merges/{merge_ids[-1]}/undo")).status_code == 200
