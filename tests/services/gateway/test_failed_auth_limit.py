"""Security issue, class 7 (gateway part): random keys cost a database lookup each, without limit.

Failed authentications are now limited per client address: past the burst, an unknown credential is answered
429 problem+json without a lookup, while keys already verified keep working from the same address.
"""

from tests.services.gateway.conftest import create_key, gateway_stack

from gateway.keys import repository
from gateway.keys.service import generate_key


async def test_failed_authentications_are_limited_per_address_without_lookups(database_url: str, monkeypatch) -> None:
    async with gateway_stack(database_url, services=(), failed_auth_per_s=0.01, failed_auth_burst=5) as stack:
        frontend = await create_key(stack, "frontend")
        lookups = 0
        by_hash = repository.by_hash

        async def counted(session, digest: bytes):
            nonlocal lookups
            lookups += 1
            return await by_hash(session, digest)

        monkeypatch.setattr(repository, "by_hash", counted)  # counts the real lookups; the database answers them
        async with stack.client(frontend) as ui:
            assert (await ui.get("/v1/webhooks")).status_code == 200
        assert lookups == 1
        statuses = []
        for _ in range(15):
            async with stack.client(generate_key()) as stranger:
                resp = await stranger.get("/v1/webhooks")
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                assert resp.headers["content-type"].startswith("application/problem+json")
                assert int(resp.headers["retry-after"]) >= 1
        assert statuses == [401] * 5 + [429] * 10
        assert lookups == 1 + 5, "past the limit, no lookup"
        async with stack.client(frontend) as ui:
            assert (await ui.get("/v1/webhooks")).status_code == 200, "a verified key still works from there"
        async with stack.client() as admin:  # the bootstrap key is known without a lookup too
            assert (await admin.get("/v1/webhooks")).status_code == 200
        async with stack.client(key=None) as anonymous:
            assert (await anonymous.get("/v1/webhooks")).status_code == 401, "no credential: no lookup, plain 401"
