"""One ASGI middleware in front of every route: credential → role policy → rate limit → body size limit.

It runs before routing, so an unknown path without a credential is a 401 like any other, and nothing about
the routes behind the gateway leaks to anonymous callers. Keys are never logged.

Failed authentications are limited per client address (security issue, class 7): each unknown key or
invalid token takes a token from the address's bucket, and once it is empty a credential that is not
already known from memory is answered 429 without a database lookup or a signature check. Keys and tokens
verified earlier keep working from that address. IPv6 clients are counted per /64 (one host's share).
"""

import ipaddress
import math
from collections.abc import Callable

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.problems import DomainError, problem_response

from gateway.keys.service import KeyStore
from gateway.security import policy
from gateway.security.jwt import JwtVerifier
from gateway.security.principal import PRINCIPAL_SCOPE_KEY, Principal
from gateway.security.rate_limit import TokenBuckets

API_KEY_HEADER = b"x-api-key"
AUTHORIZATION = b"authorization"


class BodyTooLarge(DomainError):
    status, slug, title = 413, "body-too-large", "Request body too large"


class RoleMembers(BaseModel):
    role: str = Field(description="The credential's role, which may not call the route.")


class Forbidden(DomainError):
    status, slug, title, members = 403, "forbidden", "Forbidden", RoleMembers


class RateLimited(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Callable[[], KeyStore],
        jwt: JwtVerifier | None,
        buckets: TokenBuckets,
        max_body_bytes: int,
        failed_auth: TokenBuckets,
    ) -> None:
        self.app = app
        self.keys = keys
        self.jwt = jwt
        self.buckets = buckets
        self.max_body_bytes = max_body_bytes
        self.failed_auth = failed_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if policy.is_open(method, path):
            return await self.app(scope, receive, send)
        try:
            principal, failure = await self._authenticate(scope)
        except _TooManyFailures:
            retry_after = max(1, math.ceil(self.failed_auth.wait(_client(scope))))
            return await problem_response(
                429,
                RateLimited.title,
                f"too many failed authentications from your address; retry in {retry_after}s",
                slug=RateLimited.slug,
                instance=path,
                headers={"Retry-After": str(retry_after)},
            )(scope, receive, send)
        if principal is None:
            schemes = 'ApiKey header="X-API-Key"' + (", Bearer" if self.jwt else "")
            return await problem_response(
                401, "Unauthorized", failure, slug="unauthorized", instance=path, headers={"WWW-Authenticate": schemes}
            )(scope, receive, send)
        if not policy.allowed(principal.role, method, path):
            return await problem_response(
                403,
                Forbidden.title,
                f"role {principal.role.value!r} may not {method} {path}",
                slug=Forbidden.slug,
                instance=path,
                role=principal.role.value,
            )(scope, receive, send)
        wait = self.buckets.take(principal.id, principal.rate_limit_per_s)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            return await problem_response(
                429,
                RateLimited.title,
                f"rate limit exceeded; retry in {retry_after}s",
                slug=RateLimited.slug,
                instance=path,
                headers={"Retry-After": str(retry_after)},
            )(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return await problem_response(
                413,
                BodyTooLarge.title,
                f"body of {declared} bytes is over the {self.max_body_bytes}-byte limit",
                slug=BodyTooLarge.slug,
                instance=path,
            )(scope, receive, send)
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, self._limited(receive), send)

    async def _authenticate(self, scope: Scope) -> tuple[Principal | None, str]:
        key = _header(scope, API_KEY_HEADER)
        if key is not None:
            keys = self.keys()
            if self.failed_auth.wait(client := _client(scope)) > 0 and not keys.is_known(key):
                raise _TooManyFailures
            principal = await keys.verify(key)
            if principal is None:
                self.failed_auth.take(client)
            return principal, "the API key is unknown, revoked or expired"
        auth = _header(scope, AUTHORIZATION)
        if auth is not None and auth[:7].lower() == "bearer " and self.jwt is not None:
            token = auth[7:].strip()
            if self.failed_auth.wait(client := _client(scope)) > 0 and not self.jwt.is_cached(token):
                raise _TooManyFailures
            principal = await self.jwt.verify(token)
            if principal is None:
                self.failed_auth.take(client)
            return principal, "the bearer token is invalid, expired or carries no allowed role"
        # No credential at all costs no lookup: a plain 401, not counted.
        return None, "a credential is required: an API key in the X-API-Key header" + (" or a bearer token" if self.jwt else "")

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"body is over the {limit}-byte limit")
            return message

        return limited


class _TooManyFailures(Exception):
    """Refused before checking: the client's address has used up its failed authentications."""


def _client(scope: Scope) -> str:
    """The bucket of the client's address (as uvicorn reports it: behind a proxy, set --forwarded-allow-ips)."""
    client = scope.get("client")
    host = client[0] if client else ""
    if ":" in host:
        try:
            return str(ipaddress.IPv6Network(f"{host.split('%')[0]}/64", strict=False))
        except ValueError:
            return host
    return host


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None
