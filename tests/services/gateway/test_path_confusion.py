"""Security issue, class 1: the gateway decides on exactly the path it forwards.

A frontend key may not ingest (`POST /v1/events` → 403), but `POST /v1/customers/../events` passed the policy
as a customer route and the upstream client resolved the dot segment, so the event was stored. Every
ambiguous spelling is now refused with 400 problem+json before the policy, and nothing reaches a service.
"""

import orjson
import pytest

from tests.services.gateway.conftest import create_key, gateway_stack, raw_request
from tests.services.gateway.test_limits_and_routing import recording_service

from gateway.security.paths import UnsafePath, canonical_path

EVENT = orjson.dumps([{"id": "e-1", "source": "someone-elses-shop", "type": "customer.upserted", "data": {}}])
SMUGGLED = [
    ("POST", "/v1/customers/../events"),
    ("POST", "/v1/customers/%2e%2e/events"),
    ("POST", "/v1/customers/%2E%2e/events"),
    ("POST", "/v1/merges/x/../../events"),
    ("POST", "/v1/customers/.%2e/events"),
    ("POST", "/v1/customers%2f..%2fevents"),
    ("POST", "/v1/customers/..%5Cevents"),
    ("POST", "/v1//events"),
    ("POST", "/v1/customers/./../events"),
    ("GET", "/v1/customers/../../metrics"),
    ("GET", "/v1/customers/x/../../../openapi.json"),
    ("GET", "/v1/customers/%00/timeline"),
    ("GET", "/v1/customers/%ff/timeline"),
]


async def test_dot_segments_and_encoded_slashes_are_refused_before_the_policy(database_url: str) -> None:
    async with recording_service() as (url, seen), gateway_stack(database_url, services=(), interaction_url=url) as stack:
        frontend = await create_key(stack, "frontend")
        for method, target in SMUGGLED:
            for key in (frontend, None):  # refused before authentication: the same answer with or without a key
                headers = {"X-API-Key": key, "Content-Type": "application/json"} if key else {}
                status, body = await raw_request(
                    stack.gateway_url, f"{method} {target}", headers, EVENT if method == "POST" else b""
                )
                assert status == 400, (target, status, body)
                problem = orjson.loads(body)
                assert problem["type"].endswith("/invalid-path") and problem["status"] == 400
        assert [s for s in seen if s["path"] != "/openapi.json"] == [], "nothing smuggled reached the service"

        # The plain spelling still gets its 403, and honest paths (escapes included) are forwarded unchanged.
        status, _ = await raw_request(stack.gateway_url, "POST /v1/events", {"X-API-Key": frontend}, EVENT)
        assert status == 403
        status, _ = await raw_request(stack.gateway_url, "GET /v1/customers/a%20b%3F/timeline/?x=%2e%2e", {"X-API-Key": frontend})
        assert status == 200
        assert seen[-1]["path"] == "/v1/customers/a%20b%3F/timeline/?x=%2e%2e"


@pytest.mark.parametrize(
    "raw",
    [
        b"/v1/events/..",
        b"/v1/events/.",
        b"/./v1",
        b"//v1/events",
        b"/v1/a%2Fb",
        b"/v1/a\\b",
        b"http://evil/v1/events",
        b"*",
        b"/v1/%c0%ae%c0%ae/x",
        b"/v1/\x7f",
    ],
)
def test_canonical_path_refuses_ambiguous_spellings(raw: bytes) -> None:
    with pytest.raises(UnsafePath):
        canonical_path(raw)


@pytest.mark.parametrize(
    ("raw", "path", "encoded"),
    [
        (b"/v1/events", "/v1/events", b"/v1/events"),
        (b"/v1/events/", "/v1/events/", b"/v1/events/"),
        (b"/", "/", b"/"),
        (b"/v1/.well-known/x..y", "/v1/.well-known/x..y", b"/v1/.well-known/x..y"),
        (b"/v1/customers/a%20b", "/v1/customers/a b", b"/v1/customers/a%20b"),
        (b"/v1/%65vents", "/v1/events", b"/v1/events"),  # decided and forwarded as the same string
        (b"/v1/partners/caf%C3%A9", "/v1/partners/caf\u00e9", b"/v1/partners/caf%C3%A9"),
    ],
)
def test_canonical_path_keeps_one_meaning(raw: bytes, path: str, encoded: bytes) -> None:
    assert canonical_path(raw) == (path, encoded)
