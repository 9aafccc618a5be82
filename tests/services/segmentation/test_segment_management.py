"""Rule segments are managed: edited (versions, members re-evaluated, history by version), archived, listed with
their members' value, tier and stage, and exported as CSV (members and history, formula cells escaped)."""

import csv
import io
import uuid

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SegmentMembershipChanged
from tests.services.segmentation.helpers import outbox_rows, purchase, stage, updated, value


async def _spend(feeder, amounts: dict[uuid.UUID, str]) -> None:
    await feeder.apply([purchase(c, a, 1) for c, a in amounts.items()])


async def test_edit_is_a_new_version_and_history_names_the_version(client, feeder):
    small, big, huge = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _spend(feeder, {small: "50", big: "300", huge: "900"})
    created = (
        await client.post(
            "/v1/segments", json={"key": "spenders", "name": "Spenders", "rule": {"field": "spend", "op": "gte", "value": 100}}
        )
    ).json()
    sid = created["segment_id"]
    assert created["version"] == 1 and created["summary"]["size"] == 2

    edited = await client.patch(
        f"/v1/segments/{sid}", json={"rule": {"field": "spend", "op": "lte", "value": 400}, "name": "Modest spenders"}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and edited.json()["name"] == "Modest spenders"
    assert edited.json()["summary"]["size"] == 2
    members = (await client.get(f"/v1/segments/{sid}/members")).json()["items"]
    assert {m["customer_id"] for m in members} == {str(small), str(big)}
    assert {m["customer_id"]: m["entered_version"] for m in members} == {str(small): 2, str(big): 1}

    history = (await client.get(f"/v1/segments/{sid}/history")).json()["items"]
    moves = {(h["customer_id"], h["entered_version"], h["left_version"]) for h in history}
    assert moves == {(str(big), 1, None), (str(huge), 1, 2), (str(small), 2, None)}

    versions = (await client.get(f"/v1/segments/{sid}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["definition"]["rule"] == {"field": "spend", "op": "gte", "value": 100}
    assert versions[0]["name"] == "Modest spenders"

    # A rule that is not valid leaves the segment as it was.
    bad = await client.patch(f"/v1/segments/{sid}", json={"rule": {"field": "ssn", "op": "eq", "value": "x"}})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/segments/{sid}")).json()["version"] == 2

    # Events keep the segment current under its new rule, recorded with the current version.
    await feeder.apply([purchase(big, "500", 2)])
    history = (await client.get(f"/v1/segments/{sid}/history")).json()["items"]
    assert (str(big), 1, 2) in {(h["customer_id"], h["entered_version"], h["left_version"]) for h in history}


async def test_archive_stops_evaluation_hides_it_and_keeps_history(client, feeder):
    customer = uuid.uuid4()
    await _spend(feeder, {customer: "200"})
    sid = (
        await client.post(
            "/v1/segments", json={"key": "test-segment", "name": "Test", "rule": {"field": "spend", "op": "gte", "value": 100}}
        )
    ).json()["segment_id"]
    archived = await client.delete(f"/v1/segments/{sid}")
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert archived.json()["summary"]["size"] == 0

    listed = (await client.get("/v1/segments", params={"kind": "rule"})).json()["items"]
    assert sid not in {s["segment_id"] for s in listed}
    listed = (await client.get("/v1/segments", params={"kind": "rule", "include_archived": "true"})).json()["items"]
    assert sid in {s["segment_id"] for s in listed}

    history = (await client.get(f"/v1/segments/{sid}/history")).json()["items"]
    assert [(h["customer_id"], h["left_version"]) for h in history] == [(str(customer), 1)]
    assert (await client.get(f"/v1/segments/{sid}/members")).json()["items"] == []

    # No longer evaluated: a new matching customer does not enter it.
    newcomer = uuid.uuid4()
    await _spend(feeder, {newcomer: "500"})
    assert len((await client.get(f"/v1/segments/{sid}/history")).json()["items"]) == 1

    # The exit was published like any other.
    changes = [Envelope.from_json(p).payload(SegmentMembershipChanged) for _, p in await outbox_rows(feeder.engine)]
    assert [(str(c.customer_id), c.change) for c in changes if c.segment_key == "rule:test-segment"] == [
        (str(customer), "entered"),
        (str(customer), "left"),
    ]

    for again in (client.delete(f"/v1/segments/{sid}"), client.patch(f"/v1/segments/{sid}", json={"name": "x"})):
        resp = await again
        assert resp.status_code == 409 and resp.json()["type"].endswith("segment-archived")
    # The key stays taken (the history keeps naming it).
    retaken = await client.post(
        "/v1/segments", json={"key": "test-segment", "name": "T", "rule": {"field": "spend", "op": "gte", "value": 1}}
    )
    assert retaken.status_code == 409


async def test_only_rule_segments_are_edited_or_archived(client, feeder):
    await feeder.apply([purchase(uuid.uuid4(), "10", d) for d in range(4)])
    resp = await client.post("/v1/segmentation/runs", json={"kind": "rfm", "as_of": "2026-02-01T00:00:00Z"})
    assert resp.status_code == 202
    await client.executor.wait_idle()
    rfm = (await client.get("/v1/segments", params={"kind": "rfm"})).json()["items"][0]
    for resp in (
        await client.delete(f"/v1/segments/{rfm['segment_id']}"),
        await client.patch(f"/v1/segments/{rfm['segment_id']}", json={"name": "x"}),
    ):
        assert resp.status_code == 409 and resp.json()["type"].endswith("not-a-rule-segment")
    missing = await client.patch(f"/v1/segments/{uuid.uuid4()}", json={"name": "x"})
    assert missing.status_code == 404


async def test_members_carry_value_tier_and_stage_and_page(client, feeder):
    customers = sorted(uuid.uuid4() for _ in range(5))
    await _spend(feeder, {c: "100" for c in customers})
    await feeder.apply([value(customers[0], "1234.5", "gold"), stage(customers[0], "retention")])
    sid = (
        await client.post(
            "/v1/segments", json={"key": "buyers", "name": "Buyers", "rule": {"field": "order_count", "op": "gte", "value": 1}}
        )
    ).json()["segment_id"]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/segments/{sid}/members", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [m["customer_id"] for m in seen] == [str(c) for c in customers]
    first = seen[0]
    assert (float(first["value"]), first["value_currency"], first["tier"], first["stage"]) == (1234.5, "EUR", "gold", "retention")
    assert seen[1]["value"] is None and seen[1]["tier"] is None


async def test_csv_exports_stream_members_and_history_with_formulas_escaped(client, feeder):
    customers = sorted(uuid.uuid4() for _ in range(3))
    await _spend(feeder, {c: "100" for c in customers})
    await feeder.apply([value(customers[0], "10", '=HYPERLINK("http://x")'), stage(customers[1], "retention")])
    await feeder.apply([updated(customers[2], plan="pro")])
    sid = (
        await client.post(
            "/v1/segments",
            json={"key": "exported", "name": "Exported", "rule": {"field": "order_count", "op": "gte", "value": 1}},
        )
    ).json()["segment_id"]
    await client.patch(f"/v1/segments/{sid}", json={"rule": {"not": {"field": "attributes.plan", "op": "eq", "value": "pro"}}})

    resp = await client.get(f"/v1/segments/{sid}/members/export")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["customer_id"] for r in rows] == [str(c) for c in customers[:2]]
    assert rows[0]["tier"] == '\'=HYPERLINK("http://x")'
    assert rows[1]["stage"] == "retention" and rows[1]["entered_version"] == "1"

    resp = await client.get(f"/v1/segments/{sid}/history/export")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 3
    assert {(r["customer_id"], r["entered_version"], r["left_version"]) for r in rows} == {
        (str(customers[0]), "1", ""),
        (str(customers[1]), "1", ""),
        (str(customers[2]), "1", "2"),
    }

    assert (await client.get(f"/v1/segments/{uuid.uuid4()}/members/export")).status_code == 404


async def test_hostile_edits_and_cursors_are_4xx_problems(client, feeder):
    await _spend(feeder, {uuid.uuid4(): "100"})
    sid = (
        await client.post(
            "/v1/segments", json={"key": "hostile", "name": "H", "rule": {"field": "spend", "op": "gte", "value": 1}}
        )
    ).json()["segment_id"]
    for body in (
        {"rule": None},
        {"rule": "x"},
        {"rule": {"all": []}},
        {"name": "\x00"},
        {"currency": "eur"},
        {"rule": {"field": "product", "op": "eq", "value": "A-1"}},
        [],
        "x",
    ):
        resp = await client.patch(f"/v1/segments/{sid}", json=body)
        assert resp.status_code == 422, (body, resp.status_code)
        assert resp.headers["content-type"].startswith("application/problem+json")
    for path in (f"/v1/segments/{sid}/history", f"/v1/segments/{sid}/members"):
        resp = await client.get(path, params={"cursor": "bm90LWEtY3Vyc29y"})
        assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/segments/{sid}")).json()["version"] == 1, "no refused edit made a version"
    assert (await client.get("/v1/segments/not-a-uuid/history")).status_code == 422
