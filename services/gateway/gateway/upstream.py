"""Pooled HTTP client to the services (aiohttp: httpx's pool collapses under concurrency, see the docs).

Connection failures and timeouts become `UpstreamUnavailable`, rendered as 503 problem+json naming the
service. Only idempotent requests are retried, once, and only when the connection could not be made.
"""

import asyncio
from dataclasses import dataclass

import aiohttp

from shared.http import CORRELATION_HEADER
from shared.log import current_correlation_id
from shared.problems import DomainError

IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class UpstreamUnavailable(DomainError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class Upstreams:
    def __init__(self, urls: dict[str, str], *, connect_timeout_s: float, request_timeout_s: float,
                 max_connections: int) -> None:
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=connect_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                         keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, service: str, method: str, path: str, *, query: str = "", body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> UpstreamResponse:
        assert self._session is not None, "Upstreams.start() was not awaited"
        url = f"{self.urls[service]}{path}" + (f"?{query}" if query else "")
        send_headers = {k: v for k, v in (headers or {}).items() if k.lower() not in HOP_BY_HOP}
        if (cid := current_correlation_id()) is not None:
            send_headers[CORRELATION_HEADER] = cid
        attempts = 2 if method in IDEMPOTENT else 1
        for attempt in range(1, attempts + 1):
            try:
                async with self._session.request(method, url, data=body, headers=send_headers) as resp:
                    payload = await resp.read()
                    out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
                    return UpstreamResponse(resp.status, out_headers, payload)
            except aiohttp.ClientConnectorError as exc:
                if attempt == attempts:
                    raise UpstreamUnavailable(f"{service} is unreachable: {exc.strerror or exc}", service=service) from None
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                raise UpstreamUnavailable(f"{service} did not answer in time", service=service) from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"{service} failed mid-request: {type(exc).__name__}", service=service) from None
        raise AssertionError("unreachable")
