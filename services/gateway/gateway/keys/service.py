"""Creating and verifying API keys; the hot path is an in-memory cache of verified keys.

A key is `crm_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with that much
entropy a slow password hash buys nothing, and lookups go straight to the unique hash index. Verified keys
(and unknown ones) are cached for `key_cache_ttl_s`; `last_used_at` is written at most once per
`last_used_flush_s` per key, by one batched UPDATE off the request path.

The two caches are separate and bounded (security issue, class 7): known keys in an LRU of `max_cached`
entries, unknown/revoked ones in their own LRU of `max_unknown`. A flood of random keys only ever evicts other
random keys, never a valid key (which would cost every real caller a lookup again).
"""

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.problems import DomainError

from gateway.keys import repository
from gateway.security.principal import Principal, Role

log = logging.getLogger(__name__)
KEY_PREFIX = "crm_"
MAX_KEY_LENGTH = 200


class InvalidKeyRequest(DomainError):
    status, slug, title = 422, "invalid-api-key-request", "Invalid API key request"


def hash_key(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).digest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    expires_at: datetime | None
    cached_until: float


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    partner_id: str | None,
    expires_at: datetime | None,
    rate_limit_per_s: float | None,
) -> tuple[str, sa.Row]:
    """Returns (the key, its stored row): the key itself is never stored nor shown again."""
    if (role is Role.PARTNER) != (partner_id is not None):
        raise InvalidKeyRequest("a partner key needs `partner_id`; other roles must not have one")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidKeyRequest("`expires_at` is in the past")
    raw = generate_key()
    row = await repository.insert(
        session,
        {
            "id": uuid.uuid4(),
            "name": name,
            "role": role.value,
            "partner_id": partner_id,
            "key_hash": hash_key(raw),
            "prefix": raw[: len(KEY_PREFIX) + 6],
            "expires_at": expires_at,
            "rate_limit_per_s": rate_limit_per_s,
        },
    )
    return raw, row


class KeyStore:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        bootstrap_admin_key: str,
        cache_ttl_s: float,
        last_used_flush_s: float,
        max_cached: int = 50_000,
        max_unknown: int = 10_000,
    ) -> None:
        self._session_factory = session_factory
        self._bootstrap_hash = hash_key(bootstrap_admin_key) if bootstrap_admin_key else None
        self._ttl = cache_ttl_s
        self._flush_every = last_used_flush_s
        self._max_cached = max_cached
        self._max_unknown = max_unknown
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()  # known keys, least recently used first
        self._unknown: OrderedDict[bytes, float] = OrderedDict()  # digest -> cached until; unknown or revoked
        self._used: dict[uuid.UUID, datetime] = {}
        self._last_marked: dict[uuid.UUID, float] = {}
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        # digest -> its lookup in flight: requests with a key that is not (or no longer) in memory share one.
        self._lookups: dict[bytes, asyncio.Future[_Cached | None]] = {}

    async def verify(self, raw: str) -> Principal | None:
        if not raw or len(raw) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(raw)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(id="bootstrap-admin", role=Role.ADMIN, kind="bootstrap")
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached.cached_until >= now:
            self._cache.move_to_end(digest)
        elif self._unknown.get(digest, 0.0) >= now:
            return None
        else:
            cached = await self._load_once(digest, now)
            if cached is None:
                return None
        if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
            return None
        self._record_use(uuid.UUID(cached.principal.id), now)
        return cached.principal

    def is_known(self, raw: str) -> bool:
        """Whether `raw` would be accepted from memory, without a lookup (the pre-authentication limit lets
        these through when a client address has used up its failed attempts)."""
        if not raw or len(raw) > MAX_KEY_LENGTH:
            return False
        digest = hash_key(raw)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return True
        cached = self._cache.get(digest)
        return cached is not None and cached.cached_until >= time.monotonic()

    async def _fetch(self, digest: bytes):
        async with self._session_factory() as session:
            return await repository.by_hash(session, digest)

    async def _load_once(self, digest: bytes, now: float) -> _Cached | None:
        """One database lookup per key at a time. Without it, every request in flight when a busy key's entry
        expires (every `cache_ttl_s`) read the key on its own: at 2,000 requests/s, hundreds of reads queued
        on the gateway's few pooled connections, and the answers behind them waited."""
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = self._lookups[digest] = asyncio.ensure_future(self._load(digest, now))
            lookup.add_done_callback(lambda _: self._lookups.pop(digest, None))
        # Shielded: a request that goes away does not cancel the lookup the others wait for.
        return await asyncio.shield(lookup)

    async def _load(self, digest: bytes, now: float) -> _Cached | None:
        row = await self._fetch(digest)
        self._cache.pop(digest, None)
        self._unknown.pop(digest, None)
        if row is None or row.revoked_at is not None:
            if len(self._unknown) >= self._max_unknown:
                self._unknown.popitem(last=False)
            self._unknown[digest] = now + self._ttl
            return None
        principal = Principal(
            id=str(row.id), role=Role(row.role), kind="api_key", partner_id=row.partner_id, rate_limit_per_s=row.rate_limit_per_s
        )
        entry = _Cached(principal, row.expires_at, now + self._ttl)
        if len(self._cache) >= self._max_cached:
            self._cache.popitem(last=False)
        self._cache[digest] = entry
        return entry

    def forget(self, key_id: uuid.UUID) -> None:
        """Drops a key from this replica's cache at once (revocation); other replicas within the TTL."""
        for digest, entry in list(self._cache.items()):
            if entry.principal.id == str(key_id):
                del self._cache[digest]

    def _record_use(self, key_id: uuid.UUID, now: float) -> None:
        if now - self._last_marked.get(key_id, float("-inf")) >= self._flush_every:
            self._last_marked[key_id] = now
            self._used[key_id] = datetime.now(UTC)

    async def flush(self) -> None:
        if not self._used:
            return
        used, self._used = self._used, {}
        try:
            async with self._session_factory() as session, session.begin():
                await repository.mark_used(session, used)
        except Exception as exc:  # noqa: BLE001 - last use is best effort; retried with the next flush
            log.warning("could not record API key use: %r", exc)
            self._used = {**used, **self._used}

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=min(5.0, self._flush_every))
            except TimeoutError:
                pass
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="gateway-key-last-used")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
