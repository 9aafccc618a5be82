"""Read timeouts for uvicorn's HTTP/1.1 protocol: slow clients are cut off (security issue, class 7).

Uvicorn times out idle keep-alive connections only. A client that sends its request line and headers a byte
at a time, or its headers and then nothing of the announced body, or connects and sends nothing, holds a
connection (and, mid-body, a running request) for as long as it likes; a thousand of them were held with
nothing reaped. This protocol adds the two timeouts of Apache's mod_reqtimeout:

- headers: the request line and headers must be complete within `header_timeout_s` of the request's first
  byte (of the connection, for the first request); otherwise 408 and the connection is closed;
- body: the body must arrive within `body_timeout_s` of the end of the headers, extended by one second per
  `body_min_bytes_per_s` bytes received. A legitimate large post at any normal speed keeps extending its
  deadline; one trickled a byte at a time does not. When it expires the connection is closed (the app sees
  a disconnect: nothing half-received is processed).

While the app is not reading the body (uvicorn paused the socket for back-pressure), the body clock waits.
It is the httptools protocol uvicorn picks by default, with four parser callbacks wrapped: one timer per
connection, re-armed twice per request.
"""

import asyncio
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReadTimeoutProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_bytes_per_s: float = 10_240.0

    _timer: asyncio.TimerHandle | None = None
    _in_headers = False
    _body_deadline = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # already running since the connection was made (its first request)
            self._arm_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._body_deadline = time.monotonic() + self.body_timeout_s
        self._arm(self._body_deadline)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_deadline += len(body) / self.body_min_bytes_per_s
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm_headers(self) -> None:
        self._in_headers = True
        self._arm(time.monotonic() + self.header_timeout_s)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(max(0.0, deadline - time.monotonic()), self._expired)

    def _disarm(self) -> None:
        self._in_headers = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._in_headers:
            self._in_headers = False
            self.transport.write(_REQUEST_TIMEOUT)
            self.transport.close()
            return
        now = time.monotonic()
        if self.flow is not None and self.flow.read_paused:
            # Back-pressure: the app has not taken what arrived; the client is not the slow one.
            self._body_deadline = max(self._body_deadline, now + self.body_timeout_s)
        if self._body_deadline > now:
            self._arm(self._body_deadline)  # the body kept arriving: its deadline moved on
            return
        self.transport.close()


def read_timeout_protocol(header_timeout_s: float, body_timeout_s: float,
                          body_min_bytes_per_s: float) -> type[ReadTimeoutProtocol]:
    """The protocol class with these timeouts, for `uvicorn.Config(http=...)`."""
    return type("ReadTimeoutProtocol", (ReadTimeoutProtocol,), {
        "header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s,
        "body_min_bytes_per_s": body_min_bytes_per_s,
    })
