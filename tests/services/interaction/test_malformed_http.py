"""The HTTP door rejects every malformed shape with its reason and keeps the valid events of the same batch."""

import orjson
import pytest

from tests.services.interaction.conftest import customer_of
from tests.services.interaction.events import order
from tests.services.interaction.malformed import MALFORMED
from tests.support import scalar


async def test_every_malformed_item_is_rejected_with_its_reason_and_valid_ones_kept(client, engine):
    batch = [order("V-1", "V-O-1")]
    for _, item, _ in MALFORMED:
        batch.append(item)
    batch.append(order("V-2", "V-O-2"))
    resp = await client.post("/v1/events", content=orjson.dumps(batch), headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    results = resp.json()["results"]
    assert results[0]["status"] == "accepted" and results[-1]["status"] == "accepted"
    for (name, _, reason), result in zip(MALFORMED, results[1:-1], strict=True):
        assert result["status"] == "rejected", name
        assert reason in result["reason"], f"{name}: {result['reason']}"
    assert await scalar(engine, "select count(*) from interaction.purchase") == 2
    assert await customer_of(engine, "M-1") is None, "nothing of a rejected event is stored"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'[{"id": ', "not valid JSON"),
        (b'["\xff\xfe"]', "not valid JSON"),
        (b'"just a string"', "JSON array"),
    ],
)
async def test_malformed_bodies_are_400(client, body, detail):
    resp = await client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and detail in resp.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/customers", {"email": "a\x00@b.io"}),
        ("/v1/customers", {"attribute": "k=\x00"}),
        ("/v1/customers", {"partner": "\x00"}),
        ("/v1/customers", {"cursor": "not-a-cursor"}),
        ("/v1/partners", {"cursor": "WyJceDAwIl0"}),
        ("/v1/partners/a%00b", {}),
    ],
)
async def test_bad_query_values_are_422_problem_json_never_500(client, path, params):
    resp = await client.get(path, params=params)
    assert resp.status_code in (404, 422), resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_far_off_times_in_filters_are_422(client):
    resp = await client.get("/v1/customers", params={"last_seen_after": "0001-01-01T00:00:00+05:00"})
    assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
    resp = await client.get(
        f"/v1/customers/{'0' * 8}-0000-0000-0000-{'0' * 12}/timeline", params={"until": "9999-12-31T23:59:59-05:00"}
    )
    assert resp.status_code == 422
