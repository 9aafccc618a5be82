"""The embedded mode's slice: four services sharing one in-process transport, on a real Postgres."""

import uuid

from shared.db import make_engine
from shared.messaging.inprocess import InProcessTransport
from tests.services.conftest import serving
from tests.services.test_ingestion_http import order
from tests.support import scalar, wait_until

import clv.app
import interaction.app
import lifecycle.app
import segmentation.app
from clv.settings import ClvSettings
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from segmentation.settings import SegmentationSettings


async def test_order_flows_from_interaction_to_every_projection(database_url):
    transport = InProcessTransport()
    common = {"database_url": database_url, "transport": "inprocess", "relay_poll_interval_s": 0.2}
    engine = make_engine(database_url)
    async with (
        serving(interaction.app.create_app(InteractionSettings(**common), transport)) as interaction_client,
        serving(segmentation.app.create_app(SegmentationSettings(**common), transport)) as segmentation_client,
        serving(clv.app.create_app(ClvSettings(**common), transport)) as clv_client,
        serving(lifecycle.app.create_app(LifecycleSettings(**common), transport)) as lifecycle_client,
    ):
        # Out of order: the later order arrives first; the earlier one must still count as the first purchase.
        later = order("C-1", amount="30.00", time="2026-11-02T10:00:00Z")
        earlier = order("C-1", amount="20.00", time="2026-11-01T10:00:00Z")
        assert (await interaction_client.post("/v1/events", json=[later])).status_code == 200
        assert (await interaction_client.post("/v1/events", json=[earlier])).status_code == 200
        customer_id = await scalar(engine, "select customer_id from interaction.customer_identifier")

        async def projected() -> bool:
            parts = [(segmentation_client, "/segmentation"), (clv_client, "/value"), (lifecycle_client, "/lifecycle")]
            answers = [await c.get(f"/v1/customers/{customer_id}{p}") for c, p in parts]
            return all(a.status_code == 200 and a.json().get("order_count", 2) == 2 for a in answers)

        await wait_until(projected, timeout=30, message="every projection updated")
        seg = (await segmentation_client.get(f"/v1/customers/{customer_id}/segmentation")).json()
        value = (await clv_client.get(f"/v1/customers/{customer_id}/value")).json()
        stage = (await lifecycle_client.get(f"/v1/customers/{customer_id}/lifecycle")).json()
        unknown = await lifecycle_client.get(f"/v1/customers/{uuid.uuid4()}/lifecycle")

    assert seg["by_currency"][0]["total_spend"] == "50.0000"
    assert seg["by_currency"][0]["first_purchase_at"].startswith("2026-11-01T10:00:00")
    assert seg["last_purchase_at"].startswith("2026-11-02T10:00:00")
    assert value["by_currency"][0]["historical_value"] == "50.0000"
    # A repeat purchase within the rule set's window: Development, then Retention (lifecycle's rules).
    assert stage["stage"] == "retention" and stage["order_count"] == 2
    assert [h["stage"] for h in stage["history"]] == ["development", "retention"]
    assert stage["history"][0]["entered_at"].startswith("2026-11-01T10:00:00"), "the earliest purchase starts Development"
    assert stage["stage_entered_at"].startswith("2026-11-02T10:00:00")
    assert unknown.status_code == 404
    # One stage change per move, carried by lifecycle's outbox.
    assert await scalar(engine, "select count(*) from lifecycle.outbox") == 2
    await engine.dispose()
