"""Bearer tokens (JWT) verified against a configured JWKS, for frontend end users.

PyJWKClient fetches and caches the key set; it is blocking (urllib), so lookups run in a thread. Verified
tokens are cached until their expiry (at most a minute), so a user's burst of calls is verified once.
"""

import asyncio
import hashlib
import time

import jwt

from gateway.security.principal import Principal, Role


class JwtVerifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        algorithms: list[str],
        audience: str,
        issuer: str,
        role_claim: str,
        allowed_roles: list[str],
        max_cache_s: float = 60.0,
    ) -> None:
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        self._algorithms = algorithms
        self._audience = audience or None
        self._issuer = issuer or None
        self._role_claim = role_claim
        self._allowed = {Role(r) for r in allowed_roles}
        self._max_cache_s = max_cache_s
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    def is_cached(self, token: str) -> bool:
        """Verified earlier and not expired: accepted without verifying again."""
        hit = self._cache.get(hashlib.sha256(token.encode()).digest()) if len(token) <= 8192 else None
        return hit is not None and hit[1] > time.monotonic()

    async def verify(self, token: str) -> Principal | None:
        if len(token) > 8192:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            claims = await asyncio.to_thread(self._decode, token)
        except (jwt.PyJWTError, ValueError, KeyError):
            return None
        try:
            role = Role(claims[self._role_claim])
        except (ValueError, KeyError):
            return None
        if role not in self._allowed:
            return None
        principal = Principal(id=f"jwt:{claims.get('sub', '?')}", role=role, kind="jwt")
        ttl = min(self._max_cache_s, max(0.0, float(claims.get("exp", time.time())) - time.time()))
        if len(self._cache) >= 50_000:
            del self._cache[next(iter(self._cache))]  # the oldest; only verified tokens get here
        self._cache[digest] = (principal, now + ttl)
        return principal

    def _decode(self, token: str) -> dict:
        key = self._client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
        )
