"""Pure functions of the gateway: ownership routing, the role policy, token buckets, signatures, filters."""

import time

import pytest

from gateway.proxy.routing import owner
from gateway.security.policy import allowed, is_open
from gateway.security.principal import Role
from gateway.security.rate_limit import TokenBuckets
from gateway.webhooks.projection import matches
from gateway.webhooks.signing import sign, verify


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/v1/events", "interaction"),
        ("/v1/customers", "interaction"),
        ("/v1/customers/abc", "interaction"),
        ("/v1/customers/abc/timeline", "interaction"),
        ("/v1/customers/abc/erasure", "interaction"),
        ("/v1/merges/m1/undo", "interaction"),
        ("/v1/partners/p", "interaction"),
        ("/v1/partners/p/figures", "interaction"),
        ("/v1/satisfaction", "interaction"),
        ("/v1/customers/abc/segmentation", "segmentation"),
        ("/v1/customers/abc/segments/history", "segmentation"),
        ("/v1/segments", "segmentation"),
        ("/v1/segmentation/runs/1", "segmentation"),
        ("/v1/customers/abc/value", "clv"),
        ("/v1/customers/abc/propositions/x", "clv"),
        ("/v1/value/models", "clv"),
        ("/v1/propositions", "clv"),
        ("/v1/customers/abc/lifecycle", "lifecycle"),
        ("/v1/customers/abc/deals", "lifecycle"),
        ("/v1/lifecycle/rules", "lifecycle"),
        ("/v1/pipelines/p", "lifecycle"),
        ("/v1/deals/d", "lifecycle"),
        ("/v1/campaigns", "lifecycle"),
        ("/v1/campaigns/report", "lifecycle"),
        ("/v1/campaignsx", None),
        ("/v1/api-keys", None),
        ("/v1/webhooks/x", None),
        ("/v1/valuefake", None),
        ("/v1/customers/abc/valuex", "interaction"),
        ("/other", None),
    ],
)
def test_ownership_by_prefix(path: str, service: str | None) -> None:
    assert owner(path) == service


def test_policy() -> None:
    assert is_open("GET", "/health/ready") and is_open("GET", "/openapi.json") and not is_open("GET", "/v1/events")
    assert allowed(Role.ADMIN, "POST", "/v1/api-keys")
    assert not allowed(Role.FRONTEND, "GET", "/v1/api-keys") and not allowed(Role.FRONTEND, "POST", "/v1/events")
    assert allowed(Role.FRONTEND, "DELETE", "/v1/deals/1")
    assert allowed(Role.ANALYST, "GET", "/v1/segments") and not allowed(Role.ANALYST, "POST", "/v1/segments")
    assert allowed(Role.PARTNER, "POST", "/v1/events") and not allowed(Role.PARTNER, "GET", "/v1/events")


def test_token_bucket_refills_at_the_rate() -> None:
    buckets = TokenBuckets(rate_per_s=1000, burst=2)
    assert buckets.take("k") == 0 and buckets.take("k") == 0
    wait = buckets.take("k")
    assert 0 < wait <= 0.001
    time.sleep(0.01)
    assert buckets.take("k") == 0
    assert buckets.take("other") == 0


def test_signature_round_trip_and_tampering() -> None:
    now = int(time.time())
    sig = sign("whsec_x", now, b'{"a":1}')
    assert sig.startswith("v1=") and verify("whsec_x", str(now), b'{"a":1}', sig)
    assert not verify("whsec_x", str(now), b'{"a":2}', sig)
    assert not verify("whsec_x", str(now - 3600), b'{"a":1}', sign("whsec_x", now - 3600, b'{"a":1}'))


def test_filters() -> None:
    data = {"to_stage": "loyalty", "from_stage": None, "nested": {"k": 3}, "flag": True}
    assert matches({}, data)
    assert matches({"to_stage": "loyalty"}, data)
    assert matches({"to_stage": ["retention", "loyalty"]}, data)
    assert not matches({"to_stage": "churned"}, data)
    assert matches({"from_stage": "null", "nested.k": "3", "flag": "true"}, data)
    assert not matches({"missing": "x"}, data)


async def test_the_gateways_own_document_reads_neither_trip_nor_obey_the_circuit():
    """The OpenAPI warm-up polls services that are still starting: its refused connections once opened the
    circuit, and the first partner call after start-up got 503 "circuit open" from a gateway whose services were
    all ready."""
    from deploy.local.ports import free_port
    from shared.internal_auth import Caller, TokenSigner, generate_keypair

    from gateway.upstream import Upstreams

    port = free_port()  # nobody listens on it
    upstreams = Upstreams(
        {"interaction": f"http://127.0.0.1:{port}"},
        signer=TokenSigner(generate_keypair()[0]),
        connect_timeout_s=1,
        request_timeout_s=2,
        max_connections=4,
        breaker_failures=3,
    )
    await upstreams.start()
    try:
        for _ in range(5):
            assert await upstreams.get_json_or_none("interaction", "/openapi.json", 1.0) is None
        assert upstreams.breakers["interaction"].check() == 0
        for _ in range(2):  # a caller's requests still trip it (2 attempts each for a GET)
            with pytest.raises(Exception, match="unreachable|circuit"):
                await upstreams.request("interaction", "GET", "/v1/x", caller=Caller("k1", "admin"))
        assert upstreams.breakers["interaction"].check() > 0
    finally:
        await upstreams.stop()
