"""Keep-alive HTTP/1.1 connections from the gateway to one service: the transport under `Upstreams`.

Why not aiohttp's client (which the gateway used before, and still uses for webhooks): it cost 79 µs of CPU
per request against 20 µs for this protocol, which writes the request in one `send` and parses the answer with
httptools (llhttp, the parser uvicorn serves with) — `python -m bench upstream_client`, the same requests to the
same server side by side (docs/gateway.md "Routing"). The upstreams are the gateway's own services on
known addresses, so none of a general client's work is needed here: no redirects, cookies, proxies, TLS,
decompression or DNS beyond the connect.

One request at a time per connection; a connection goes back to the pool only after a complete answer that
allows keep-alive, and is not reused once it has been idle for `keepalive_s` (kept under the services'
own keep-alive timeout, so the gateway does not race a server closing it).
"""

import asyncio
import socket
from dataclasses import dataclass
from typing import cast

import httptools


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class ConnectFailed(Exception):
    """No connection could be made (refused, unreachable, or not within the connect timeout)."""


class Dropped(Exception):
    """The connection closed before a complete answer. `answered`: some of the answer had arrived."""

    def __init__(self, answered: bool) -> None:
        super().__init__("the connection closed before a complete answer" + (" (mid-answer)" if answered else ""))
        self.answered = answered


class BadResponse(Exception):
    """The service's answer is not valid HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One connection; `exchange` sends a request and waits for its whole answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[RawResponse] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head = False
        self._answered = False
        self._done = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(Dropped(self._answered))

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done() or self._parser is None:
            self.close()  # bytes nobody asked for: the connection's framing cannot be trusted any more
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            if not waiter.done():
                waiter.set_exception(BadResponse(str(exc)))

    # --- httptools callbacks

    def on_message_begin(self) -> None:
        if self._done:  # a second answer in the same bytes as the first: nobody asked for it
            self.reusable = False
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._head and self._status() >= 200:
            self._complete()  # an answer to HEAD has no body, whatever its content-length says

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status() < 200:  # an interim answer (e.g. 103): the real one follows on the same stream
            self._headers, self._body = [], []
            return
        self._complete()

    # ---

    def _status(self) -> int:
        assert self._parser is not None
        return self._parser.get_status_code()

    def _complete(self) -> None:
        waiter, parser = self._waiter, self._parser
        if waiter is None or waiter.done() or parser is None:
            return
        self.reusable = parser.should_keep_alive() and not self._head
        self._done = True
        self._parser = None  # anything after the answer is unasked-for
        waiter.set_result(RawResponse(parser.get_status_code(), self._headers, b"".join(self._body)))

    async def exchange(self, request: bytes, *, head: bool) -> RawResponse:
        assert self.transport is not None and self._waiter is None
        self._parser = httptools.HttpResponseParser(self)
        self._head, self._answered, self._done, self.reusable = head, False, False, False
        self._headers, self._body = [], []
        self._waiter = waiter = self.loop.create_future()
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """Connections to one `host:port`, at most `limit` at once (callers beyond it wait for a free one)."""

    def __init__(self, host: str, port: int, *, limit: int, keepalive_s: float, connect_timeout_s: float) -> None:
        self.host, self.port = host, port
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []

    async def request(self, request: bytes, *, head: bool, fresh: bool = False) -> RawResponse:
        """Sends `request` (the whole message, framed) and returns the whole answer.

        Raises `ConnectFailed`, `Dropped`, `BadResponse`; a cancelled or timed-out call closes its connection (an
        answer may still be on its way, so it cannot serve another request). `fresh`: not on a pooled connection."""
        async with self._slots:
            conn = None if fresh else self._pooled()
            if conn is None:
                conn = await self._connect()
            try:
                response = await conn.exchange(request, head=head)
            except BaseException:
                conn.close()
                raise
            if conn.reusable and not conn.closed:
                conn.idle_since = conn.loop.time()
                self._idle.append(conn)
            else:
                conn.close()
            return response

    def _pooled(self) -> _Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the likeliest to be alive and warm
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                transport, conn = await loop.create_connection(lambda: _Connection(loop), self.host, self.port)
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self._connect_timeout_s}s") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc)) from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
