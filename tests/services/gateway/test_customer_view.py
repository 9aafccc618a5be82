"""The composed customer view: a merged-away id answers as its survivor in every part; a null part says why."""

import uuid
from datetime import UTC, datetime, timedelta

from tests.services.gateway.conftest import gateway_stack
from tests.services.interaction.events import identified, order
from tests.support import wait_until


async def test_a_merged_away_id_composes_the_survivor_and_every_null_part_is_explained(database_url: str) -> None:
    at = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    async with gateway_stack(database_url) as stack, stack.client() as admin:
        resp = await admin.post(
            "/v1/events",
            json=[
                order("V-1", "V-O-1", "30.00", at=at, email="old@example.com"),
                order("V-2", "V-O-2", "20.00", at=at, email="new@example.com"),
            ],
        )
        assert resp.status_code == 200, resp.text
        older = (await admin.get("/v1/customers", params={"email": "old@example.com"})).json()["items"][0]["customer_id"]
        newer = (await admin.get("/v1/customers", params={"email": "new@example.com"})).json()["items"][0]["customer_id"]
        merged = await admin.post("/v1/merges", json={"customer_ids": [newer, older], "reason": "same person"})
        assert merged.status_code == 201, merged.text
        survivor, gone = merged.json()["survivor_id"], merged.json()["merged_id"]

        async def lifecycle_counts_both_orders() -> bool:
            view = (await admin.get(f"/v1/customers/{survivor}")).json()
            return view["lifecycle"] is not None and view["lifecycle"]["order_count"] == 2

        await wait_until(lifecycle_counts_both_orders, message="lifecycle folded the merge")
        view = (await admin.get(f"/v1/customers/{gone}")).json()
        assert view["customer_id"] == survivor and view["resolved_from"] == gone
        assert view["profile"]["customer_id"] == survivor
        assert view["lifecycle"] is not None and view["lifecycle"]["customer_id"] == survivor
        assert view["segmentation"] is not None
        assert view["value"]["customer_id"] == survivor
        assert view["unavailable"] == [] and view["absent"] == {}

        # Someone only identified (no purchase, no lead): the parts that know nothing are null and say why,
        # never a null with an empty `unavailable`.
        resp = await admin.post("/v1/events", json=[identified("V-3", email="quiet@example.com")])
        assert resp.status_code == 200, resp.text
        quiet = (await admin.get("/v1/customers", params={"email": "quiet@example.com"})).json()["items"][0]
        view = (await admin.get(f"/v1/customers/{quiet['customer_id']}")).json()
        assert view["lifecycle"] is None and view["absent"]["lifecycle"].startswith("lifecycle: ")
        for name in ("profile", "segmentation", "value", "lifecycle"):
            assert (view[name] is None) == (name in view["absent"]), (name, view["absent"])

        plain = (await admin.get(f"/v1/customers/{survivor}")).json()
        assert plain["resolved_from"] is None and plain["customer_id"] == survivor
        assert (await admin.get(f"/v1/customers/{uuid.uuid4()}")).status_code == 404
