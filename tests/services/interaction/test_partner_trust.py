"""Security class 2 (docs/security.md): a partner acts only on its own customers.

A partner names external ids only under its own source; its emails and phones link customers across partners
only when it is trusted to (`trust_contact_linking`, off by default); a merge its events cause names it.
"""

from tests.services.interaction.conftest import customer_of, trust
from tests.services.interaction.events import event, identified
from tests.support import scalar


def probe_order(subject: str, order_id: str, identifiers: dict) -> dict:
    return event(
        "order.completed",
        subject,
        {"order_id": order_id, "amount": "1.00", "currency": "EUR", "identifiers": identifiers},
        source="probe-shop",
    )


async def test_another_partners_external_ids_are_rejected_and_nothing_is_merged(client, engine):
    await trust(client, "victim-shop")
    resp = await client.post(
        "/v1/events",
        json=[
            identified("V-1", email="v1@example.com", source="victim-shop"),
            identified("V-2", email="v2@example.com", source="victim-shop"),
        ],
    )
    assert resp.status_code == 200, resp.text
    v1, v2 = await customer_of(engine, "V-1", "victim-shop"), await customer_of(engine, "V-2", "victim-shop")

    # The reported attack: probe-shop's order names victim-shop's V-1 and V-2's email.
    attack = probe_order("P-1", "X-1", {"external_ids": {"victim-shop": "V-1"}, "email": "v2@example.com"})
    resp = await client.post("/v1/events", json=[attack])
    assert resp.status_code == 422, resp.text
    [result] = resp.json()["results"]
    assert result["status"] == "rejected" and "'victim-shop' is not your source" in result["reason"]
    assert await scalar(engine, "select count(*) from interaction.customer_merge") == 0
    assert await scalar(engine, "select count(*) from interaction.purchase") == 0
    assert {await customer_of(engine, "V-1", "victim-shop"), await customer_of(engine, "V-2", "victim-shop")} == {v1, v2}

    # Its own namespace is fine: a second id of its own customer.
    own = probe_order("P-1", "X-2", {"external_ids": {"probe-shop": "legacy-1"}})
    assert (await client.post("/v1/events", json=[own])).status_code == 200
    assert await customer_of(engine, "legacy-1", "probe-shop") == await customer_of(engine, "P-1", "probe-shop")


async def test_email_links_only_when_the_partner_is_trusted_and_the_merge_names_it(client, engine):
    await trust(client, "victim-shop")
    await client.post(
        "/v1/events",
        json=[
            identified("V-1", email="v1@example.com", source="victim-shop"),
            identified("V-2", email="v2@example.com", source="victim-shop"),
        ],
    )
    v1, v2 = await customer_of(engine, "V-1", "victim-shop"), await customer_of(engine, "V-2", "victim-shop")

    # A partner registered by its first event is not trusted: V-2's email links nothing.
    resp = await client.post("/v1/events", json=[probe_order("P-1", "X-1", {"email": "v2@example.com"})])
    assert resp.status_code == 200, resp.text
    assert (await client.get("/v1/partners/probe-shop")).json()["trust_contact_linking"] is False
    p1 = await customer_of(engine, "P-1", "probe-shop")
    assert p1 not in (v1, v2)
    v2_profile = (await client.get(f"/v1/customers/{v2}")).json()
    assert v2_profile["purchase_count"] == 0 and v2_profile["partners"] == ["victim-shop"]
    # Kept as probe-shop's own (it still finds its customer by email), not as a link to V-2.
    found = (await client.get("/v1/customers", params={"email": "v2@example.com"})).json()["items"]
    assert {c["customer_id"] for c in found} == {str(v2), str(p1)}
    assert await scalar(engine, "select count(*) from interaction.customer_merge") == 0

    # An operator trusts it (an admin-only change at the gateway): now its emails link.
    resp = await client.patch("/v1/partners/probe-shop", json={"trust_contact_linking": True})
    assert resp.status_code == 200 and resp.json()["trust_contact_linking"] is True
    resp = await client.post(
        "/v1/events",
        json=[
            probe_order("P-2", "X-2", {"email": "v2@example.com"}),
            probe_order("P-3", "X-3", {"email": "v1@example.com", "external_ids": {"probe-shop": "P-2"}}),
        ],
    )
    assert resp.status_code == 200, resp.text
    survivor = await customer_of(engine, "P-2", "probe-shop")
    assert survivor in (v1, v2) and await customer_of(engine, "V-1", "victim-shop") == survivor
    [audit] = (await client.get(f"/v1/customers/{survivor}/merges")).json()["items"]
    assert {audit["survivor_id"], audit["merged_id"]} == {str(v1), str(v2)} and audit["caused_by"] == ["probe-shop"]
    assert "probe-shop/" in audit["reason"]


async def test_the_trust_setting_is_validated_and_read_back(client):
    created = await client.post("/v1/partners", json={"id": "new-shop", "name": "New", "kind": "retailer"})
    assert created.status_code == 201 and created.json()["trust_contact_linking"] is False
    assert (await client.patch("/v1/partners/new-shop", json={"trust_contact_linking": "yes please"})).status_code == 422
    assert (await client.patch("/v1/partners/new-shop", json={"surprise": 1})).status_code == 422
    assert (await client.patch("/v1/partners/nobody", json={"trust_contact_linking": True})).status_code == 404
    listed = (await client.get("/v1/partners")).json()["items"]
    assert [p["trust_contact_linking"] for p in listed if p["id"] == "new-shop"] == [False]
