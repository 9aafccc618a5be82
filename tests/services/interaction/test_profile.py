"""The profile, timeline, search, partners, export and erasure over HTTP on a real Postgres."""

import uuid
from decimal import Decimal

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import INTERACTION_EVENT_TYPES, SOURCE
from tests.pii_scan import find_pii, phone_forms
from tests.services.interaction.conftest import customer_of, outbox_events, trust
from tests.services.interaction.events import cancel, event, feedback, identified, order, refund, touch


async def assert_contracts_honoured(engine) -> None:
    """Every published event parses as its contract says, keyed and subjected by its customer."""
    for published_event in await outbox_events(engine):
        envelope = Envelope.from_dict(published_event)
        payload = INTERACTION_EVENT_TYPES[envelope.type].model_validate(envelope.data)
        assert envelope.source == SOURCE and envelope.subject == str(payload.customer_id)
        assert envelope.dataschema == payload.dataschema()


async def post(client, events: list[dict]) -> dict:
    resp = await client.post("/v1/events", json=events)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_every_event_type_lands_in_the_profile_the_timeline_and_the_outbox(client, engine):
    batch = [
        identified(
            "C-1",
            email="  Ada@Example.COM ",
            phone="+44 20 7946 0958",
            attributes={"tier": "gold", "visits": 12, "vip": True, "birthday": "1990-04-01", "first_name": "Ada"},
            consent={"email_marketing": True},
        ),
        order("C-1", "A-1", "100.00", channel="web", at="2026-10-01T10:00:00Z"),
        order("C-1", "A-2", "50.00", channel="store", at="2026-10-05T10:00:00Z"),
        order("C-1", "A-3", "30.00", channel="store", currency="USD", at="2026-10-07T10:00:00Z"),
        refund("C-1", "A-1", "25.00"),
        cancel("C-1", "A-2"),
        touch("C-1", "email", at="2026-10-02T10:00:00Z"),
        touch("C-1", "phone", at="2026-10-03T10:00:00Z"),
        touch("C-1", "phone", at="2026-10-04T10:00:00Z"),
        feedback("C-1", nps=9, csat=5, at="2026-10-09T10:00:00Z"),
        feedback("C-1", nps=3, at="2026-10-08T10:00:00Z"),  # older: does not replace the latest NPS
        event("lead.captured", "C-1", {"campaign": "spring", "lead_source": "webinar", "qualified": True}),
        event("consent.changed", "C-1", {"consent": {"sms": False}, "occurred_at": "2026-10-10T10:00:00Z"}),
        event(
            "deal.updated",
            "C-1",
            {"deal_id": "D-1", "stage": "proposal", "amount": "500", "currency": "EUR", "expected_close": "2027-01-01T00:00:00Z"},
        ),
        # The reseller (trusted to link by contact details) knows the customer by its own id and the same
        # email: the same customer.
        event(
            "interaction.logged",
            "R-77",
            {"channel": "social", "occurred_at": "2026-10-06T10:00:00Z", "identifiers": {"email": "ada@example.com"}},
            source="reseller-x",
        ),
    ]
    await trust(client, "shop-eu", "reseller-x")
    result = await post(client, batch)
    assert result["accepted"] == len(batch)
    cid = await customer_of(engine, "C-1")
    profile = (await client.get(f"/v1/customers/{cid}")).json()

    kinds = {(i["kind"], i["external_id"]) for i in profile["identifiers"]}
    assert {("email", "ada@example.com"), ("phone", "+442079460958"), ("source", "C-1")} <= kinds
    # The identifiers list speaks the one list dialect: items + next_cursor, paged by kind, source and id.
    listed, cursor = [], None
    while True:
        page = (
            await client.get(f"/v1/customers/{cid}/identifiers", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        ).json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 2
        listed += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert listed == sorted(profile["identifiers"], key=lambda i: (i["kind"], i["source"], i["external_id"]))
    assert (await client.get(f"/v1/customers/{cid}/identifiers", params={"cursor": "bad"})).status_code == 422
    assert profile["attributes"]["visits"] == {
        "value": 12,
        "type": "number",
        "source": "shop-eu",
        "updated_at": profile["attributes"]["visits"]["updated_at"],
    }
    assert profile["attributes"]["birthday"]["type"] == "date"
    assert profile["attributes"]["vip"]["type"] == "boolean"
    assert profile["consent"]["email_marketing"]["granted"] is True
    assert profile["consent"]["sms"]["granted"] is False
    totals = {t["currency"]: t for t in profile["purchase_totals"]}
    assert Decimal(totals["EUR"]["total_spend"]) == Decimal("75")  # 100 - 25 refunded; A-2 cancelled
    assert totals["EUR"]["purchase_count"] == 1 and Decimal(totals["EUR"]["refunded"]) == Decimal("25")
    assert Decimal(totals["USD"]["average_spend"]) == Decimal("30")
    assert profile["purchase_count"] == 2
    assert profile["last_purchase_at"].startswith("2026-10-07")
    assert profile["preferred_channel"] == "phone"  # phone 2, web 1, store 1 (the cancelled order does not count)
    assert set(profile["last_touchpoints"]) == {"email", "phone", "social"}
    assert profile["last_touchpoints"]["phone"].startswith("2026-10-04")
    assert profile["latest_nps"]["score"] == 9 and profile["latest_csat"]["score"] == 5
    assert profile["partners"] == ["reseller-x", "shop-eu"]

    await assert_contracts_honoured(engine)
    published = {e["type"] for e in await outbox_events(engine)}
    assert published == {
        "customer.created",
        "customer.updated",
        "purchase.recorded",
        "purchase.refunded",
        "touchpoint.recorded",
        "feedback.recorded",
        "lead.captured",
        "deal.updated",
    }
    [updated] = (await outbox_events(engine, "customer.updated"))[:1]
    assert "first_name" not in updated["data"]["attributes"], "PII-looking attributes are not published"
    refunds = await outbox_events(engine, "purchase.refunded")
    assert sorted((r["data"]["order_id"], r["data"]["cancelled"], r["data"]["amount"]) for r in refunds) == [
        ("A-1", False, "25.0000"),
        ("A-2", True, "50.0000"),
    ]

    timeline = (await client.get(f"/v1/customers/{cid}/timeline", params={"limit": 5})).json()
    assert len(timeline["items"]) == 5 and timeline["next_cursor"]
    everything, cursor = [], None
    while True:
        page = (
            await client.get(f"/v1/customers/{cid}/timeline", params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        ).json()
        everything += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(everything) == len(batch)
    assert [e["occurred_at"] for e in everything] == sorted((e["occurred_at"] for e in everything), reverse=True)
    phones = (
        await client.get(f"/v1/customers/{cid}/timeline", params={"type": "interaction.logged", "channel": "phone"})
    ).json()["items"]
    assert len(phones) == 2
    window = (
        await client.get(
            f"/v1/customers/{cid}/timeline", params={"since": "2026-10-03T00:00:00Z", "until": "2026-10-05T00:00:00Z"}
        )
    ).json()["items"]
    assert len(window) == 2
    by_partner = (await client.get(f"/v1/customers/{cid}/timeline", params={"partner": "reseller-x"})).json()["items"]
    assert [e["channel"] for e in by_partner] == ["social"]
    bad = await client.get(f"/v1/customers/{cid}/timeline", params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_late_refund_before_its_order_still_adjusts_the_traits(client, engine):
    await post(client, [refund("C-2", "B-1", "4.00")])
    await post(client, [order("C-2", "B-1", "10.00")])
    cid = await customer_of(engine, "C-2")
    profile = (await client.get(f"/v1/customers/{cid}")).json()
    assert Decimal(profile["purchase_totals"][0]["total_spend"]) == Decimal("6")
    assert len(await outbox_events(engine, "purchase.refunded")) == 1


async def test_shared_email_merges_into_the_oldest_and_the_undo_restores_both(client, engine):
    await trust(client, "shop-eu", "crm")
    await post(
        client,
        [
            identified("C-1", email="ada@example.com", attributes={"tier": "gold"}, time="2026-01-01T00:00:00Z"),
            order("C-1", "A-1", "10.00", at="2026-01-02T00:00:00Z"),
        ],
    )
    await post(
        client,
        [
            order("K-9", "Z-1", "99.00", source="crm", at="2026-03-01T00:00:00Z"),
            touch("K-9", "store", source="crm", at="2026-03-02T00:00:00Z"),
            identified("K-9", source="crm", attributes={"tier": "bronze", "segment": "b2b"}, time="2026-03-01T00:00:00Z"),
        ],
    )
    survivor, merged = await customer_of(engine, "C-1"), await customer_of(engine, "K-9", source="crm")
    assert survivor != merged
    # The crm now learns K-9's email, in another case: the two customers are one.
    await post(client, [identified("K-9", source="crm", email="ADA@example.com ", time="2026-04-01T00:00:00Z")])
    assert await customer_of(engine, "K-9", source="crm") == survivor

    via_old_id = (await client.get(f"/v1/customers/{merged}")).json()
    assert via_old_id["customer_id"] == str(survivor) and via_old_id["resolved_from"] == str(merged)
    assert via_old_id["purchase_count"] == 2
    assert via_old_id["attributes"]["tier"]["value"] == "gold", "the survivor's values win"
    assert via_old_id["attributes"]["segment"]["value"] == "b2b", "missing ones are filled"
    assert via_old_id["partners"] == ["crm", "shop-eu"]
    [merged_event] = await outbox_events(engine, "customer.merged")
    assert merged_event["data"]["survivor_id"] == str(survivor) and merged_event["data"]["merged_id"] == str(merged)
    merges = (await client.get(f"/v1/customers/{survivor}/merges")).json()
    assert merges["next_cursor"] is None
    [audit] = merges["items"]
    assert (await client.get(f"/v1/customers/{merged}/merges", params={"limit": 1})).json()["items"] == [audit]
    assert audit["id"] == merged_event["data"]["merge_id"] and audit["undone_at"] is None
    assert audit["reason"].startswith("event crm/") and "names identifiers of both customers" in audit["reason"]
    assert audit["caused_by"] == ["crm"]

    undo = await client.post(f"/v1/merges/{audit['id']}/undo")
    assert undo.status_code == 200, undo.text
    assert len(undo.json()["purchase_ids"]) == 1 and len(undo.json()["touchpoint_ids"]) == 1
    [unmerged] = await outbox_events(engine, "customer.unmerged")
    assert unmerged["data"]["purchase_ids"] == undo.json()["purchase_ids"]
    restored = (await client.get(f"/v1/customers/{merged}")).json()
    assert restored["customer_id"] == str(merged) and restored["resolved_from"] is None
    assert restored["purchase_count"] == 1 and restored["attributes"]["tier"]["value"] == "bronze"
    assert {(i["kind"], i["source"], i["external_id"]) for i in restored["identifiers"]} == {("source", "crm", "K-9")}
    original = (await client.get(f"/v1/customers/{survivor}")).json()
    assert original["purchase_count"] == 1 and "segment" not in original["attributes"]
    assert original["partners"] == ["shop-eu"]
    assert (await client.post(f"/v1/merges/{audit['id']}/undo")).status_code == 409
    # An undone merge is not redone automatically by the same link.
    await post(client, [identified("K-9", source="crm", email="ada@example.com", time="2026-05-01T00:00:00Z")])
    assert await customer_of(engine, "K-9", source="crm") == merged
    assert (await client.post(f"/v1/merges/{uuid.uuid4()}/undo")).status_code == 404
    await assert_contracts_honoured(engine)


async def test_search_by_identifier_attribute_and_trait_ranges(client, engine):
    await post(
        client,
        [
            identified("S-1", email="s1@example.com", attributes={"tier": "gold"}),
            order("S-1", "O-1", "500.00"),
            order("S-1", "O-2", "20.00"),
            identified("S-2", phone="+33 1 23 45 67 89", attributes={"tier": "silver"}),
            order("S-2", "O-3", "5.00"),
        ],
    )
    s1, s2 = await customer_of(engine, "S-1"), await customer_of(engine, "S-2")

    async def ids(**params) -> list[str]:
        resp = await client.get("/v1/customers", params=params)
        assert resp.status_code == 200, resp.text
        return [c["customer_id"] for c in resp.json()["items"]]

    assert await ids(email=" S1@EXAMPLE.com") == [str(s1)]
    assert await ids(phone="+33123456789") == [str(s2)]
    assert await ids(source="shop-eu", external_id="S-2") == [str(s2)]
    assert await ids(attribute="tier=gold") == [str(s1)]
    assert await ids(min_purchase_count=2) == [str(s1)]
    assert await ids(currency="EUR", min_total_spend="10", max_total_spend="100") == []
    assert await ids(currency="EUR", max_total_spend="10") == [str(s2)]
    page = (await client.get("/v1/customers", params={"limit": 1})).json()
    second = (await client.get("/v1/customers", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert {page["items"][0]["customer_id"], second["items"][0]["customer_id"]} == {str(s1), str(s2)}
    assert (await client.get("/v1/customers", params={"min_total_spend": "1"})).status_code == 422
    assert (await client.get("/v1/customers", params={"limit": 0})).status_code == 422


async def test_partner_registry_auto_registers_and_lists_customers_and_touchpoints(client, engine):
    await post(client, [touch("P-1", "support", source="help-desk"), touch("P-2", "phone", source="help-desk")])
    auto = (await client.get("/v1/partners/help-desk")).json()
    assert auto["auto_registered"] is True and auto["kind"] == "unclassified"
    claimed = await client.post("/v1/partners", json={"id": "help-desk", "name": "Help desk", "kind": "service_partner"})
    assert claimed.status_code == 201 and claimed.json()["auto_registered"] is False
    again = await client.post("/v1/partners", json={"id": "help-desk", "name": "X", "kind": "supplier"})
    assert again.status_code == 409
    assert (await client.post("/v1/partners", json={"id": "acme", "name": "Acme", "kind": "distributor"})).status_code == 201
    listed = (await client.get("/v1/partners", params={"kind": "distributor"})).json()["items"]
    assert [p["id"] for p in listed] == ["acme"]
    customers = (await client.get("/v1/partners/help-desk/customers")).json()["items"]
    assert len(customers) == 2
    searched = (await client.get("/v1/customers", params={"partner": "help-desk"})).json()["items"]
    assert sorted(c["customer_id"] for c in searched) == sorted(c["customer_id"] for c in customers)
    assert (await client.get("/v1/customers", params={"partner": "acme"})).json()["items"] == []
    # Every partner list pages to its end through next_cursor, one item per page, each item once.
    for path, key, want in (
        ("/v1/partners", "id", 2),
        ("/v1/partners/help-desk/customers", "customer_id", 2),
        ("/v1/partners/help-desk/touchpoints", "id", 2),
    ):
        seen, cursor = [], None
        while True:
            page = (await client.get(path, params={"limit": 1, **({"cursor": cursor} if cursor else {})})).json()
            seen += [item[key] for item in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert len(seen) == len(set(seen)) == want, (path, seen)
        bad = await client.get(path, params={"cursor": "WyJ4IiwiIl0"})
        assert bad.status_code == 422 and bad.json()["type"].endswith("invalid-cursor"), bad.text
    assert (await client.get("/v1/partners/nobody")).status_code == 404
    assert (await client.post("/v1/partners", json={"id": "x", "name": "X", "kind": "alien"})).status_code == 422


async def test_export_holds_everything_and_erasure_removes_pii(client, engine):
    await post(
        client,
        [
            identified("E-1", email="eve@example.com", attributes={"first_name": "Eve"}),
            order("E-1", "E-O-1", "12.00"),
            touch("E-1", "phone"),
            feedback("E-1", nps=8),
        ],
    )
    cid = await customer_of(engine, "E-1")
    export = (await client.get(f"/v1/customers/{cid}/export")).json()
    assert export["profile"]["attributes"]["first_name"]["value"] == "Eve"
    assert len(export["purchases"]) == 1 and len(export["timeline"]) == 4
    assert any(e["data"].get("summary") for e in export["timeline"])

    erased = await client.post(f"/v1/customers/{cid}/erasure")
    assert erased.status_code == 200, erased.text
    after = (await client.get(f"/v1/customers/{cid}/export")).json()
    assert after["profile"]["identifiers"] == [] and after["profile"]["attributes"] == {}
    assert after["profile"]["erased_at"] is not None
    assert not any(k in e["data"] for e in after["timeline"] for k in ("summary", "comment", "attributes"))
    assert after["profile"]["purchase_count"] == 1, "anonymous facts stay"
    assert len(await outbox_events(engine, "customer.erased")) == 1
    assert (await client.post(f"/v1/customers/{cid}/erasure")).status_code == 409
    assert await client.get("/v1/customers", params={"email": "eve@example.com"}) is not None
    assert (await client.get("/v1/customers", params={"email": "eve@example.com"})).json()["items"] == []
    # Erasure requested by a partner event works the same way.
    await post(
        client, [identified("E-2", email="zed@example.com"), event("erasure.requested", "E-2", {"reason": "customer asked"})]
    )
    assert await customer_of(engine, "E-2") is None
    assert len(await outbox_events(engine, "customer.erased")) == 2
    await assert_contracts_honoured(engine)


async def test_partner_erasure_redacts_what_its_own_batch_publishes(client, engine):
    """The batch that brings PII and the erasure: its events reach the outbox redacted (R8)."""
    email, phone = "kim.doe@example.com", "+44 20 7946 0123"
    await post(
        client,
        [
            identified("K-1", email=email, phone=phone, attributes={"name": "Kim Doe"}),
            order("K-1", f"ORD-{email}", "12.00"),
            event("deal.updated", "K-1", {"deal_id": f"D-{email}", "stage": "open", "owner": "Kim Doe"}),
            event("lead.captured", "K-1", {"campaign": email, "note": phone}),
            event("erasure.requested", "K-1", {"reason": f"asked by {email}"}),
        ],
    )
    assert len(await outbox_events(engine, "customer.erased")) == 1
    assert await find_pii(engine, [email, "Kim Doe", *phone_forms("+442079460123", phone)]) == []
    await assert_contracts_honoured(engine)


async def test_merge_by_hand_then_undo(client, engine):
    await post(
        client,
        [order("H-1", "H-O-1", "10.00", at="2026-01-01T00:00:00Z"), order("H-2", "H-O-2", "20.00", at="2026-02-01T00:00:00Z")],
    )
    older, newer = await customer_of(engine, "H-1"), await customer_of(engine, "H-2")
    merged = await client.post("/v1/merges", json={"customer_ids": [str(newer), str(older)], "reason": "same person"})
    assert merged.status_code == 201, merged.text
    assert merged.json()["survivor_id"] == str(older) and merged.json()["merged_id"] == str(newer)
    assert (await client.get(f"/v1/customers/{newer}")).json()["purchase_count"] == 2
    again = await client.post("/v1/merges", json={"customer_ids": [str(newer), str(older)]})
    assert again.status_code == 409
    assert (await client.post("/v1/merges", json={"customer_ids": [str(older), str(uuid.uuid4())]})).status_code == 404
    undo = await client.post(f"/v1/merges/{merged.json()['id']}/undo")
    assert undo.status_code == 200 and len(undo.json()["purchase_ids"]) == 1
    assert (await client.get(f"/v1/customers/{newer}")).json()["purchase_count"] == 1
    await assert_contracts_honoured(engine)
