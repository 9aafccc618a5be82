"""Pipelines and deals: seeded pipelines, CRUD, moves with lost reasons, partner deal events, the forecast."""

import uuid
from decimal import Decimal

from shared.contracts.interaction import CustomerMerged
from tests.services.lifecycle.conftest import NOW, created, days_ago, deal_updated, envelope, erased, lead


async def test_seeded_pipelines_and_a_new_one(lc):
    items = (await lc.client.get("/v1/pipelines")).json()["items"]
    assert [p["key"] for p in items] == ["marketing", "sales", "service"]
    sales = (await lc.client.get("/v1/pipelines/sales")).json()
    assert [s["key"] for s in sales["stages"]] == ["lead", "qualified", "proposal", "negotiation", "won", "lost"]
    assert [s["outcome"] for s in sales["stages"]][-2:] == ["won", "lost"]
    assert "competitor" in sales["lost_reasons"]
    assert (await lc.client.get("/v1/pipelines/nope")).status_code == 404

    body = {
        "key": "renewals",
        "name": "Renewals",
        "lost_reasons": ["price"],
        "stages": [
            {"key": "due", "name": "Due", "win_probability": "0.6"},
            {"key": "renewed", "name": "Renewed", "win_probability": "1", "outcome": "won"},
            {"key": "lapsed", "name": "Lapsed", "win_probability": "0", "outcome": "lost"},
        ],
    }
    assert (await lc.client.post("/v1/pipelines", json=body)).status_code == 201
    assert (await lc.client.post("/v1/pipelines", json=body)).status_code == 409
    no_terminal = {**body, "key": "x", "stages": body["stages"][:1] * 3}
    assert (await lc.client.post("/v1/pipelines", json=no_terminal)).status_code == 422
    assert (await lc.client.delete("/v1/pipelines/renewals")).status_code == 204


async def test_deal_lifecycle_through_the_api(lc):
    cid = uuid.uuid4()
    await lc.apply([created(cid, days_ago(3)), lead(cid, days_ago(3))])
    resp = await lc.client.post(
        "/v1/deals", json={"customer_id": str(cid), "pipeline": "sales", "amount": "1200.00", "currency": "EUR", "owner": "bob"}
    )
    assert resp.status_code == 201, resp.text
    deal = resp.json()
    assert (deal["stage"], deal["status"], Decimal(deal["win_probability"])) == ("lead", "open", Decimal("0.1"))
    assert (await lc.view(cid))["stage"] == "acquisition", "an open deal moves a prospect to Acquisition"

    url = f"/v1/deals/{deal['id']}/moves"
    assert (await lc.client.post(url, json={"stage": "proposal", "actor": "bob"})).status_code == 201
    resp = await lc.client.post(url, json={"stage": "lost"})
    assert resp.status_code == 422 and "lost_reason" in resp.json()["detail"]
    resp = await lc.client.post(url, json={"stage": "lost", "lost_reason": "aliens"})
    assert resp.status_code == 422 and "unknown lost_reason" in resp.json()["detail"]
    assert (await lc.client.post(url, json={"stage": "nowhere"})).status_code == 422
    resp = await lc.client.post(url, json={"stage": "lost", "lost_reason": "price"})
    assert resp.status_code == 201
    lost = resp.json()
    assert (lost["status"], lost["lost_reason"]) == ("lost", "price")
    assert [h["stage"] for h in lost["history"]] == ["lead", "proposal", "lost"]
    assert all(h["seconds_in_stage"] >= 0 for h in lost["history"]) and lost["history"][1]["actor"] == "bob"
    assert (await lc.client.post(url, json={"stage": "won"})).status_code == 422, "closed deals do not move"

    resp = await lc.client.patch(f"/v1/deals/{deal['id']}", json={"amount": "900"})
    assert resp.status_code == 200 and Decimal(resp.json()["amount"]) == 900
    assert (await lc.client.get(f"/v1/deals/{uuid.uuid4()}")).status_code == 404
    page = (await lc.client.get(f"/v1/customers/{cid}/deals")).json()
    assert [d["id"] for d in page["items"]] == [deal["id"]]

    # A list shows each deal's history as the deal resource does (it showed `history: []`).
    def steps(history: list[dict]) -> list[tuple]:  # seconds_in_stage of the current stage grows between reads
        return [(h["stage"], h["entered_at"], h["left_at"], h["actor"]) for h in history]

    one = (await lc.client.get(f"/v1/deals/{deal['id']}")).json()
    assert steps(page["items"][0]["history"]) == steps(one["history"])
    assert [h["stage"] for h in page["items"][0]["history"]] == ["lead", "proposal", "lost"]
    listed = (await lc.client.get("/v1/deals", params={"customer_id": str(cid)})).json()["items"][0]
    assert steps(listed["history"]) == steps(one["history"])
    assert (await lc.client.get("/v1/deals", params={"cursor": "garbage"})).status_code == 422
    assert (await lc.client.delete("/v1/pipelines/sales")).status_code == 409


async def test_partner_deal_events_move_deals_and_the_forecast(lc):
    a, b = uuid.uuid4(), uuid.uuid4()
    await lc.apply(
        [
            deal_updated(a, days_ago(10), "D-1", "qualified", amount="1000"),
            deal_updated(b, days_ago(10), "D-2", "negotiation", amount="2000"),
        ]
    )
    await lc.apply([deal_updated(a, days_ago(5), "D-1", "proposal", amount="1000")])
    await lc.apply([deal_updated(a, days_ago(8), "D-1", "lead", amount="1000")])  # older than the stage: ignored
    deals = (await lc.client.get("/v1/deals", params={"pipeline": "sales", "limit": 1})).json()
    assert len(deals["items"]) == 1 and deals["next_cursor"]
    rest = (await lc.client.get("/v1/deals", params={"pipeline": "sales", "cursor": deals["next_cursor"]})).json()
    by_ext = {d["external_id"]: d for d in deals["items"] + rest["items"]}
    assert by_ext["D-1"]["stage"] == "proposal"
    d1 = (await lc.client.get(f"/v1/deals/{by_ext['D-1']['id']}")).json()
    assert [h["stage"] for h in d1["history"]] == ["qualified", "proposal"]
    assert d1["history"][0]["seconds_in_stage"] == 5 * 86400
    assert (await lc.view(a))["stage"] == "acquisition"

    forecast = (await lc.client.get("/v1/lifecycle/analytics/pipeline-value")).json()["forecasts"]
    [sales] = forecast
    assert (sales["pipeline"], sales["currency"], sales["deals"]) == ("sales", "EUR", 2)
    assert Decimal(sales["amount"]) == 3000
    assert Decimal(sales["weighted"]) == Decimal("1000") * Decimal("0.5") + Decimal("2000") * Decimal("0.75")
    # Money has 4 decimals everywhere: amount × probability (4 × 4 decimals) is rounded, not shown with 8.
    assert sales["weighted"] == "2000.0000" and all(
        s["weighted"].endswith(".0000") and len(s["weighted"].split(".")[1]) == 4 for s in sales["stages"]
    )

    await lc.apply([deal_updated(b, days_ago(1), "D-2", "won", amount="2000")])
    [sales] = (await lc.client.get("/v1/lifecycle/analytics/pipeline-value")).json()["forecasts"]
    assert Decimal(sales["weighted"]) == 500
    rows = await lc.sql("SELECT count(*) FROM lifecycle.outbox WHERE convert_from(payload, 'UTF8') LIKE '%deal.stage_changed%'")
    assert rows[0][0] == 4


async def test_a_deal_opened_and_won_in_one_batch_still_made_the_prospect_an_acquisition(lc):
    cid = uuid.uuid4()
    await lc.apply(
        [
            lead(cid, days_ago(20)),
            deal_updated(cid, days_ago(10), "D-9", "proposal"),
            deal_updated(cid, days_ago(5), "D-9", "won"),
        ]
    )
    view = await lc.view(cid)
    assert [h["stage"] for h in view["history"]] == ["approach", "acquisition"]
    [deal] = (await lc.client.get(f"/v1/customers/{cid}/deals")).json()["items"]
    assert (deal["stage"], deal["status"]) == ("won", "won")


async def test_a_deal_needs_a_customer_interaction_announced(lc):
    """A deal for an id interaction never minted was opened (201) for nobody; an erased one too."""
    stranger = uuid.uuid4()
    body = {"pipeline": "sales", "amount": "100", "currency": "EUR"}
    resp = await lc.client.post("/v1/deals", json={"customer_id": str(stranger), **body})
    assert resp.status_code == 422 and resp.json()["type"].endswith("unknown-customer"), resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert (await lc.client.get("/v1/deals")).json()["items"] == [], "nothing was opened"

    known, gone = uuid.uuid4(), uuid.uuid4()
    await lc.apply([created(known), created(gone)])
    await lc.apply([created(known)])  # redelivered or duplicated: changes nothing
    assert (await lc.client.post("/v1/deals", json={"customer_id": str(known), **body})).status_code == 201
    await lc.apply([erased(gone)])
    resp = await lc.client.post("/v1/deals", json={"customer_id": str(gone), **body})
    assert resp.status_code == 422 and "erased" in resp.json()["detail"]

    # A merged-away id opens the deal for its survivor, as every other read of that id answers as the survivor.
    merged = uuid.uuid4()
    await lc.apply([created(merged)])
    await lc.apply(
        [
            envelope(
                CustomerMerged(
                    customer_id=known,
                    merge_id=uuid.uuid4(),
                    survivor_id=known,
                    merged_id=merged,
                    reason="same email",
                    merged_at=NOW,
                )
            )
        ]
    )
    resp = await lc.client.post("/v1/deals", json={"customer_id": str(merged), **body})
    assert resp.status_code == 201 and resp.json()["customer_id"] == str(known)
