"""Pooled HTTP client to the services (aiohttp: httpx's pool collapses under concurrency, see the docs).

Connection failures and timeouts become `UpstreamUnavailable`, rendered as 503 problem+json naming the
service. Only idempotent requests are retried, once, and only when the connection could not be made (or
dropped before an answer). A circuit breaker per service: after `breaker_failures` consecutive connection
failures the service is answered 503 at once for `breaker_cooloff_s`, then one request probes it again.
"""

import time
from dataclasses import dataclass

import aiohttp
from pydantic import BaseModel, Field
from yarl import URL

from shared.http import CORRELATION_HEADER
from shared.internal_auth import HEADER as INTERNAL_TOKEN_HEADER
from shared.internal_auth import Caller, TokenSigner
from shared.log import current_correlation_id
from shared.problems import DomainError

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
}
# Credentials stop at the gateway: the services behind it never see (nor could log) them. A client's own
# internal token is dropped too: the services get only the one the gateway signs.
NOT_FORWARDED = HOP_BY_HOP | {"x-api-key", "authorization", "cookie", INTERNAL_TOKEN_HEADER}
# Who the gateway's own calls (the services' OpenAPI documents) are made as.
GATEWAY_CALLER = Caller("gateway", "system")


class UnavailableMembers(BaseModel):
    service: str = Field(description="The service that could not answer.")


class UpstreamUnavailable(DomainError):
    status, slug, title, members = 503, "service-unavailable", "Service unavailable", UnavailableMembers


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]
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
        self._keepalive_s = keepalive_s
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=connect_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.breakers = {name: Breaker(breaker_failures, breaker_cooloff_s) for name in urls}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=self._max_connections,
            keepalive_timeout=self._keepalive_s,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        assert self._session is not None, "Upstreams.start() was not awaited"
        breaker = self.breakers[service] if use_breaker else Breaker(failures=2**31, cooloff_s=0)
        if (open_for := breaker.check()) > 0:
            raise UpstreamUnavailable(f"{service} is unavailable (circuit open for {open_for:.1f}s more)", service=service)
        # Sent exactly as given (encoded=True): the path was made canonical before the policy decided on it, and
        # a client-side normalisation (dot segments, re-quoting) would send it somewhere else.
        url = URL(f"{self.urls[service]}{path}" + (f"?{query}" if query else ""), encoded=True)
        send_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in NOT_FORWARDED}
        if (cid := current_correlation_id()) is not None:
            send_headers[CORRELATION_HEADER] = cid
        send_headers[INTERNAL_TOKEN_HEADER] = self._signer.token(service, caller)
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=self._timeout.sock_connect) if timeout_s else None
        attempts = 2 if method in IDEMPOTENT else 1
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.request(
                    method, url, data=body, headers=send_headers, timeout=timeout or self._timeout
                ) as resp:
                    payload = await resp.read()
                    out_headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP]
                    breaker.succeeded()
                    return UpstreamResponse(resp.status, out_headers, payload)
            except aiohttp.ClientConnectorError as exc:
                breaker.failed()
                if attempt == attempts or breaker.check() > 0:
                    raise UpstreamUnavailable(f"{service} is unreachable: {exc.strerror or exc}", service=service) from None
            except aiohttp.ServerDisconnectedError:
                # The service went away mid-request (crash, kill -9): only an idempotent call may be repeated.
                breaker.failed()
                if attempt == attempts or breaker.check() > 0:
                    raise UpstreamUnavailable(f"{service} dropped the connection mid-request", service=service) from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise UpstreamUnavailable(f"{service} did not answer in time", service=service) from None
            except aiohttp.ClientError as exc:
                breaker.failed()
                raise UpstreamUnavailable(f"{service} failed mid-request: {type(exc).__name__}", service=service) from None
        raise AssertionError("unreachable")

    async def get_json_or_none(self, service: str, path: str, timeout_s: float) -> bytes | None:
        """A GET that never raises: the body on 200, else None (used for the OpenAPI documents)."""
        try:
            resp = await self.request(service, "GET", path, caller=GATEWAY_CALLER, timeout_s=timeout_s, use_breaker=False)
        except UpstreamUnavailable:
            return None
        return resp.body if resp.status == 200 else None
