"""Service-to-service authentication: the services trust only requests the gateway signed.

The gateway authenticates the caller (API key or bearer token) and forwards the request with an
`X-Internal-Token`: a short-lived JWT signed with the gateway's Ed25519 private key, naming the service it is
for (`aud`), the caller (`sub`, `role`, `partner_id`) and its expiry. Every service verifies it with the public
key only, so a compromised service (or anything else that can reach a service port: a neighbour container, a
webhook pointed at an internal URL) cannot mint one. Requests without a valid token get 401 problem+json;
only `/health/*` and `/metrics` stay open, for orchestrators and Prometheus.

Keys are raw Ed25519 keys in base64url (`python -m shared.internal_auth keygen` prints a pair as env lines);
a PEM is accepted too. `INTERNAL_TOKEN_PUBLIC_KEY` may list several comma-separated keys while a new key
is rolled out; a token names its key by `kid`.

Cost: signing and verifying with Ed25519 take tens of microseconds, so neither is done per request. The
gateway reuses a token for one (service, caller) for half its lifetime, and a service remembers the tokens it
has verified until they expire; on the hot path both are a dictionary lookup.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.problems import problem_response

HEADER = "x-internal-token"
ISSUER = "crm-gateway"
ALGORITHM = "EdDSA"
CALLER_SCOPE_KEY = "crm.caller"
# Orchestrator probes and the Prometheus scrape carry no token; nothing else is open.
OPEN_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
DEFAULT_TTL_S = 60.0
# Clock skew tolerated between the gateway's host and a service's.
LEEWAY_S = 5.0
# Bounds on the caches: enough for every (service, caller) pair in use, small enough never to matter.
_CACHE_MAX = 10_000
_HEADER_BYTES = HEADER.encode()


class InternalAuthConfigError(RuntimeError):
    """A service or the gateway was started without the key material it needs."""


class InvalidInternalToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who the gateway says is calling: the API key id (or JWT subject), its role and, for partners, the source."""

    subject: str
    role: str
    partner_id: str | None = None


# --- keys -------------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_keypair() -> tuple[str, str]:
    """(private, public) as base64url raw keys, the form the settings take."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return _b64(raw_private), _b64(_raw_public(private.public_key()))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if not text:
        raise InternalAuthConfigError(
            "no private key for internal tokens: set INTERNAL_TOKEN_PRIVATE_KEY "
            "(`python -m shared.internal_auth keygen` prints a pair)"
        )
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_unb64(text))
    except ValueError as exc:
        raise InternalAuthConfigError(f"INTERNAL_TOKEN_PRIVATE_KEY is not an Ed25519 key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InternalAuthConfigError("INTERNAL_TOKEN_PRIVATE_KEY must be an Ed25519 key")
    return key


def load_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """`kid` → key, for each comma-separated key (PEMs contain no commas)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if part.startswith("-----BEGIN"):
                key = serialization.load_pem_public_key(part.encode())
            else:
                key = Ed25519PublicKey.from_public_bytes(_unb64(part))
        except ValueError as exc:
            raise InternalAuthConfigError(f"INTERNAL_TOKEN_PUBLIC_KEY is not an Ed25519 key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InternalAuthConfigError("INTERNAL_TOKEN_PUBLIC_KEY must hold Ed25519 keys")
        keys[key_id(key)] = key
    if not keys:
        raise InternalAuthConfigError(
            "no public key for internal tokens: set INTERNAL_TOKEN_PUBLIC_KEY "
            "(`python -m shared.internal_auth keygen` prints a pair)"
        )
    return keys


def key_id(key: Ed25519PublicKey) -> str:
    return _b64(hashlib.sha256(_raw_public(key)).digest()[:9])


# --- the gateway's side -----------------------------------------------------------------------------------


class TokenSigner:
    """Mints the token for one (service, caller); the same token is reused for the first half of its life."""

    def __init__(self, private_key: str, *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self._key = load_private_key(private_key)
        self._kid = key_id(self._key.public_key())
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, Caller], tuple[str, float]] = {}

    def token(self, audience: str, caller: Caller) -> str:
        now = self._clock()
        cached = self._cache.get((audience, caller))
        if cached is not None and now < cached[1]:
            return cached[0]
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": caller.subject,
            "role": caller.role,
            "iat": int(now),
            "exp": int(now + self._ttl_s),
        }
        if caller.partner_id is not None:
            claims["partner_id"] = caller.partner_id
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid})
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        # Reused while more than half its lifetime is left: a service always gets at least ttl/2 of validity.
        self._cache[(audience, caller)] = (token, now + self._ttl_s / 2)
        return token


# --- the services' side -----------------------------------------------------------------------------------


class TokenVerifier:
    def __init__(self, public_keys: str, audience: str, *, clock: Callable[[], float] = time.time) -> None:
        self._keys = load_public_keys(public_keys)
        self._audience = audience
        self._clock = clock
        # token → (caller, expiry): only tokens whose signature, issuer and audience were checked get in.
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, token: str) -> Caller:
        now = self._clock()
        hit = self._verified.get(token)
        if hit is not None:
            if now <= hit[1] + LEEWAY_S:
                return hit[0]
            del self._verified[token]
            raise InvalidInternalToken("the internal token has expired")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidInternalToken("the internal token is signed with an unknown key")
            # Times are checked below, against this verifier's clock (the one its cache uses too).
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            raise InvalidInternalToken(f"the internal token is not for {self._audience}") from None
        except jwt.PyJWTError as exc:
            raise InvalidInternalToken(f"the internal token is invalid ({type(exc).__name__})") from None
        exp, iat = claims["exp"], claims["iat"]
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (exp, iat)):
            raise InvalidInternalToken("the internal token's times are not numbers")
        if now > exp + LEEWAY_S:
            raise InvalidInternalToken("the internal token has expired")
        if iat > now + LEEWAY_S:
            raise InvalidInternalToken("the internal token was issued in the future")
        role, partner_id = claims.get("role"), claims.get("partner_id")
        if not isinstance(role, str) or not (partner_id is None or isinstance(partner_id, str)):
            raise InvalidInternalToken("the internal token carries no role")
        caller = Caller(str(claims["sub"]), role, partner_id)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token] = (caller, float(exp))
        return caller


class InternalAuthMiddleware:
    """Refuses every request but health and metrics unless it carries a valid token for this service."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        token = next((v for k, v in scope["headers"] if k == _HEADER_BYTES), None)
        if token is None:
            detail = "this service answers the gateway only: the request carries no internal token"
        else:
            try:
                scope[CALLER_SCOPE_KEY] = self.verifier.verify(token.decode("latin-1"))
                return await self.app(scope, receive, send)
            except InvalidInternalToken as exc:
                detail = str(exc)
        return await problem_response(401, "Unauthorized", detail, slug="unauthorized", instance=scope["path"])(
            scope, receive, send
        )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["keygen"]:
        print("usage: python -m shared.internal_auth keygen   (prints INTERNAL_TOKEN_* env lines)", file=sys.stderr)
        return 2
    private, public = generate_keypair()
    # The private key goes to the gateway only; every service gets the public one.
    print(f"INTERNAL_TOKEN_PRIVATE_KEY={private}\nINTERNAL_TOKEN_PUBLIC_KEY={public}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
