"""The gateway's client to the services, over pooled keep-alive connections (`upstream_pool`).

Connection failures and timeouts become `UpstreamUnavailable`, rendered as 503 problem+json naming the
service. Only idempotent requests are retried, once, and only when the connection could not be made (or
dropped before an answer). A circuit breaker per service: after `breaker_failures` consecutive connection
failures the service is answered 503 at once for `breaker_cooloff_s`, then one request probes it again.
"""

import asyncio
import re
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field
from yarl import URL

from shared.http import CORRELATION_HEADER
from shared.internal_auth import HEADER as INTERNAL_TOKEN_HEADER
from shared.internal_auth import Caller, TokenSigner
from shared.log import current_correlation_id
from shared.problems import DomainError
from shared.validation import printable

from gateway.upstream_pool import BadResponse, ConnectFailed, ConnectionPool, Dropped

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "proxy-authorization",
    "proxy-authenticate",
    # The gateway answered the client's expectation itself; the service gets the whole body at once.
    "expect",
}
# Not passed back to the client: hop-by-hop headers, and the two the gateway's own server sets on every answer
# (forwarding the service's would send each twice).
_NOT_RETURNED = frozenset(h.encode() for h in HOP_BY_HOP) | {b"date", b"server"}
# A request target that keeps HTTP/1.1's framing: visible ASCII and bytes over 0x7f (sent as they came), no
# space or control character.
_TARGET = re.compile(r"/[^\x00-\x20\x7f]*")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Credentials stop at the gateway: the services behind it never see (nor could log) them. A client's own
# internal token is dropped too: the services get only the one the gateway signs.
NOT_FORWARDED = HOP_BY_HOP | {"x-api-key", "authorization", "cookie", INTERNAL_TOKEN_HEADER}
# Who the gateway's own calls (the services' OpenAPI documents) are made as.
GATEWAY_CALLER = Caller("gateway", "system")


class UnavailableMembers(BaseModel):
    service: str = Field(description="The service that could not answer.")


class UpstreamUnavailable(DomainError):
    status, slug, title, members = 503, "service-unavailable", "Service unavailable", UnavailableMembers


class BadRequestTarget(DomainError):
    status, slug, title = 400, "bad-request-target", "Request cannot be forwarded"


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # as the service sent them (names in lower case), less `_NOT_RETURNED`
    body: bytes


class Breaker:
    def __init__(self, failures: int, cooloff_s: float) -> None:
        self.threshold = failures
        self.cooloff_s = cooloff_s
        self.failures = 0
        self.open_until = 0.0

    def check(self) -> float:
        """Seconds the circuit stays open (0: calls may go through)."""
        if self.failures < self.threshold:
            return 0.0
        remaining = self.open_until - time.monotonic()
        if remaining > 0:
            return remaining
        # Half-open: let this call probe; until it answers, the others go through too (cheap, bounded by pool).
        return 0.0

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooloff_s

    def succeeded(self) -> None:
        self.failures = 0


class Upstreams:
    def __init__(
        self,
        urls: dict[str, str],
        *,
        signer: TokenSigner,
        connect_timeout_s: float,
        request_timeout_s: float,
        max_connections: int,
        breaker_failures: int = 3,
        breaker_cooloff_s: float = 5.0,
        keepalive_s: float = 4.0,
    ) -> None:
        self._signer = signer
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._request_timeout_s = request_timeout_s
        self._pools: dict[str, ConnectionPool] = {}
        self._host_lines: dict[str, str] = {}  # the Host header each service gets, as its URL names it
        for name, url in self.urls.items():
            parsed = URL(url)
            if parsed.scheme != "http" or not parsed.host or parsed.path not in ("", "/"):
                raise ValueError(f"the {name} service's URL must be http://host:port, got {url!r}")
            self._pools[name] = ConnectionPool(
                parsed.host,
                parsed.explicit_port or 80,
                limit=max_connections,
                keepalive_s=keepalive_s,
                connect_timeout_s=connect_timeout_s,
            )
            self._host_lines[name] = f"host: {parsed.host_port_subcomponent}\r\n"
        self.breakers = {name: Breaker(breaker_failures, breaker_cooloff_s) for name in urls}

    async def start(self) -> None:
        """Nothing to open: connections are made on first use."""

    async def stop(self) -> None:
        for pool in self._pools.values():
            pool.close()

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        caller: Caller,
        query: str = "",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
        use_breaker: bool = True,
    ) -> UpstreamResponse:
        """`caller` goes to the service in a token signed for it: the service acts for that caller only.

        `use_breaker=False`: the gateway's own background reads (the OpenAPI documents, fetched while the services
        are still starting) neither trip nor obey the circuit, so they cannot refuse the first callers'."""
        breaker = self.breakers[service] if use_breaker else Breaker(failures=2**31, cooloff_s=0)
        if (open_for := breaker.check()) > 0:
            raise UpstreamUnavailable(f"{service} is unavailable (circuit open for {open_for:.1f}s more)", service=service)
        message = self._message(service, method, path, query, body, headers, caller)
        pool, head = self._pools[service], method == "HEAD"
        attempts = 2 if method in IDEMPOTENT else 1
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(timeout_s or self._request_timeout_s):
                    # A retry never reuses a pooled connection: the one that failed may have had idle siblings
                    # the service closed too (it restarted).
                    raw = await pool.request(message, head=head, fresh=attempt > 1)
            except ConnectFailed as exc:
                breaker.failed()
                if attempt == attempts or breaker.check() > 0:
                    raise UpstreamUnavailable(f"{service} is unreachable: {exc}", service=service) from None
            except Dropped as exc:
                # The service went away mid-request (crash, kill -9): only an idempotent call may be repeated,
                # and only when nothing of an answer had come.
                breaker.failed()
                if exc.answered or attempt == attempts or breaker.check() > 0:
                    raise UpstreamUnavailable(f"{service} dropped the connection mid-request", service=service) from None
            except TimeoutError:
                raise UpstreamUnavailable(f"{service} did not answer in time", service=service) from None
            except BadResponse as exc:
                breaker.failed()
                raise UpstreamUnavailable(f"{service} failed mid-request: {exc}", service=service) from None
            else:
                breaker.succeeded()
                kept = [(k, v) for k, v in raw.headers if k.lower() not in _NOT_RETURNED]
                return UpstreamResponse(raw.status, kept, raw.body)
        raise AssertionError("unreachable")

    def _message(
        self,
        service: str,
        method: str,
        path: str,
        query: str,
        body: bytes | None,
        headers: dict[str, str] | None,
        caller: Caller,
    ) -> bytes:
        """The whole request, framed: request line, headers, body."""
        # Sent exactly as given: the path was made canonical before the policy decided on it, and a client-side
        # normalisation (dot segments, re-quoting) would send it somewhere else. It may not break the framing.
        target = f"{path}?{query}" if query else path
        if not _TARGET.fullmatch(target) or method not in _METHODS:
            raise BadRequestTarget(f"{method} {printable(target)!r} cannot be forwarded")
        lines = [f"{method} {target} HTTP/1.1\r\n", self._host_lines[service]]
        cid = current_correlation_id()
        for k, v in (headers or {}).items():
            # The client's correlation id is replaced by the gateway's (which it may have minted instead).
            if k.lower() not in NOT_FORWARDED and not (cid is not None and k.lower() == CORRELATION_HEADER):
                lines.append(f"{k}: {v}\r\n")
        if cid is not None:
            lines.append(f"{CORRELATION_HEADER}: {cid}\r\n")
        lines.append(f"{INTERNAL_TOKEN_HEADER}: {self._signer.token(service, caller)}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        # One line per header: a CR or LF inside a value (none can come from uvicorn's parser) would add a header.
        if head.count("\n") != len(lines) or head.count("\r") != len(lines):
            raise BadRequestTarget("a header value holds a line break")
        return head.encode("latin-1") + body if body else head.encode("latin-1")

    async def get_json_or_none(self, service: str, path: str, timeout_s: float) -> bytes | None:
        """A GET that never raises: the body on 200, else None (used for the OpenAPI documents)."""
        try:
            resp = await self.request(service, "GET", path, caller=GATEWAY_CALLER, timeout_s=timeout_s, use_breaker=False)
        except UpstreamUnavailable:
            return None
        return resp.body if resp.status == 200 else None
