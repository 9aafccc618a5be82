"""The API key caches (security issue, class 7): known keys in a bounded LRU that unknown keys cannot evict,
unknown ones in their own bounded cache; and the non-consuming look at a token bucket."""

import asyncio
import uuid
from types import SimpleNamespace

from gateway.keys.service import KeyStore, generate_key, hash_key
from gateway.security.rate_limit import TokenBuckets


class CountingStore(KeyStore):
    """The real cache logic; only the database read is replaced, and counted."""

    def __init__(self, valid: list[str], **limits: int) -> None:
        super().__init__(None, bootstrap_admin_key="", cache_ttl_s=600, last_used_flush_s=600, **limits)  # type: ignore[arg-type]
        self.rows = {
            hash_key(k): SimpleNamespace(
                id=uuid.uuid4(), role="frontend", partner_id=None, rate_limit_per_s=None, expires_at=None, revoked_at=None
            )
            for k in valid
        }
        self.lookups = 0
        self.delay = 0.0

    async def _fetch(self, digest: bytes):
        self.lookups += 1
        await asyncio.sleep(self.delay)
        return self.rows.get(digest)


async def test_a_flood_of_unknown_keys_never_evicts_a_valid_one() -> None:
    valid = generate_key()
    store = CountingStore([valid], max_cached=10, max_unknown=100)
    assert await store.verify(valid) is not None and store.lookups == 1
    for _ in range(1_000):
        assert await store.verify(generate_key()) is None
    assert store.lookups == 1_001
    assert await store.verify(valid) is not None
    assert store.lookups == 1_001, "the valid key is still answered from memory"
    assert len(store._unknown) == 100, "the unknown-key cache is bounded"
    assert store.is_known(valid) and not store.is_known(generate_key())


async def test_unknown_keys_are_remembered_and_known_keys_evicted_least_recently_used() -> None:
    a, b, c = generate_key(), generate_key(), generate_key()
    store = CountingStore([a, b, c], max_cached=2, max_unknown=10)
    wrong = generate_key()
    assert await store.verify(wrong) is None and await store.verify(wrong) is None
    assert store.lookups == 1, "an unknown key is cached too"
    await store.verify(a)
    await store.verify(b)
    await store.verify(a)  # a is now the most recently used
    await store.verify(c)  # evicts b
    assert store.lookups == 4
    await store.verify(a)
    assert store.lookups == 4
    await store.verify(b)
    assert store.lookups == 5


def test_waiting_on_a_bucket_takes_nothing() -> None:
    buckets = TokenBuckets(rate_per_s=0.001, burst=2)
    assert buckets.wait("client") == 0.0
    assert buckets.take("client") == 0.0 and buckets.wait("client") == 0.0
    assert buckets.take("client") == 0.0
    assert buckets.wait("client") > 0 and buckets.wait("client") > 0
    assert buckets.take("client") > 0


def test_buckets_are_bounded_by_forgetting_the_oldest() -> None:
    buckets = TokenBuckets(rate_per_s=0.001, burst=1, max_keys=3)
    for key in "abc":
        buckets.take(key)
    buckets.take("d")
    assert buckets.wait("a") == 0.0, "the oldest bucket was forgotten"
    assert buckets.wait("c") > 0, "the others were kept"


async def test_requests_arriving_while_a_key_is_looked_up_share_that_lookup() -> None:
    valid, wrong = generate_key(), generate_key()
    store = CountingStore([valid])
    store.delay = 0.01  # a database read takes a while; requests keep coming meanwhile
    principals = await asyncio.gather(*(store.verify(valid) for _ in range(300)))
    assert all(p is not None and p.id == principals[0].id for p in principals)
    assert store.lookups == 1, "one database read for 300 concurrent requests"
    assert await asyncio.gather(*(store.verify(wrong) for _ in range(50))) == [None] * 50
    assert store.lookups == 2
    store._cache.clear()  # the entry expired: the next burst reads it again, once
    await asyncio.gather(*(store.verify(valid) for _ in range(300)))
    assert store.lookups == 3
    assert not store._lookups, "nothing left in flight"
