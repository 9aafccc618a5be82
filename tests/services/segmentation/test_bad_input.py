"""Odd input is a 4xx problem document, never a 500."""

import base64
import uuid

import pytest

CASES = [
    ("post", "/v1/segmentation/runs", {"kind": "rfm", "as_of": "0001-01-01T00:00:00+14:00"}),
    ("post", "/v1/segmentation/runs", {"kind": "nope"}),
    ("post", "/v1/segmentation/runs", {"kind": "rfm", "scheme": "a\u0000b"}),
    ("post", "/v1/segments/preview", {"rule": {"field": "stage", "op": "eq", "value": "a\u0000"}}),
    (
        "post",
        "/v1/segments/preview",
        {"rule": {"field": "last_purchase_at", "op": "before", "value": "0001-01-01T00:00:00+14:00"}},
    ),
    ("post", "/v1/segments/preview", {"rule": {"field": "attributes.x", "op": "in", "value": [{"a": 1}]}}),
    ("post", "/v1/segments/preview", {"rule": {"field": "clv", "op": "gt", "value": 1e300}}),
    ("post", "/v1/segments", {"key": "k", "name": "a\u0000", "rule": {"field": "stage", "op": "is_null"}}),
    (
        "post",
        "/v1/segmentation/schemes",
        {"key": "k", "name": "n", "segments": [{"key": "a", "name": "a", "r": [0, 99999999999], "f": [1, 5]}]},
    ),
    ("get", "/v1/segments?cursor=" + base64.urlsafe_b64encode(b'["\\u0000"]').decode(), None),
    ("get", "/v1/segmentation/runs?cursor=" + base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+14:00", "x"]').decode(), None),
    ("get", "/v1/segmentation/runs?cursor=" + base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "x"]').decode(), None),
    ("get", f"/v1/segments/{uuid.uuid4()}/members?cursor=%%%", None),
    (
        "get",
        f"/v1/customers/{uuid.uuid4()}/segments/history?cursor="
        + base64.urlsafe_b64encode(b"[99999999999999999999999]").decode(),
        None,
    ),
    ("get", "/v1/segmentation/schemes/a%00b", None),
    ("get", "/v1/segments?limit=0", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
async def test_bad_input_is_a_client_error(client, method, path, body):
    resp = await client.request(method.upper(), path, json=body)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
