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
It is the httptools protocol uvicorn picks by default, with four parser callbacks wrapped. The timer is lazy:
one per connection, checked when it fires and moved on to the current deadline if that is later, so a busy
keep-alive connection re-arms it about once per header timeout, not per request. Measured by feeding a small
POST through a protocol instance 20,000 times, 7 alternating rounds: median 23.0 µs of CPU per request for
the plain protocol, 23.9 µs for this one (per-request timers had cost ~5 µs).
"""

import asyncio
import gc

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_IDLE, _HEADERS, _BODY = 0, 1, 2


class ReadTimeoutProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    body_min_bytes_per_s: float = 10_240.0

    _timer: asyncio.TimerHandle | None = None
    _phase = _IDLE
    _deadline = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()  # a connection that never sends a byte is timed out too

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != _HEADERS:  # else: running since the connection was made (its first request)
            self._start_headers()

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._deadline = self.loop.time() + self.body_timeout_s  # later than the timer: it moves on when it fires
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._deadline += len(body) / self.body_min_bytes_per_s
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        super().on_message_complete()

    def _start_headers(self) -> None:
        self._phase = _HEADERS
        self._deadline = self.loop.time() + self.header_timeout_s
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._phase == _IDLE or self.transport is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._phase == _BODY and self.flow is not None and self.flow.read_paused:
            # Back-pressure: the app has not taken what arrived; the client is not the slow one.
            self._deadline = max(self._deadline, now + self.body_timeout_s)
        if self._deadline > now:
            self._timer = self.loop.call_at(self._deadline, self._expired)
            return
        if self._phase == _HEADERS:
            self.transport.write(_REQUEST_TIMEOUT)
        self._phase = _IDLE
        self.transport.close()


def read_timeout_protocol(
    header_timeout_s: float, body_timeout_s: float, body_min_bytes_per_s: float
) -> type[ReadTimeoutProtocol]:
    """The protocol class with these timeouts, for `uvicorn.Config(http=...)`."""
    return type(
        "ReadTimeoutProtocol",
        (ReadTimeoutProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
            "body_min_bytes_per_s": body_min_bytes_per_s,
        },
    )


# Allocations between two young-generation collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 10_000
_server_process = False


def tune_gc_once_started() -> None:
    """Called by a server process's entry point before it serves: once its service has started (`service_started`),
    what exists then (modules, the app and its routes, models, pools, consumers) leaves the cyclic collector's view,
    and young collections run every 10,000 allocations instead of 700.

    Under `python -m bench freshness` the collector was 17% of the gateway's CPU samples and 11% of lifecycle's
    (py-spy --native): every event allocates thousands of short-lived objects, and the frequent collections kept
    walking a heap that does not change after start-up. Frozen objects are still freed by reference counting;
    only cycles among them are never collected. Never in a test process, where freezing would keep every earlier
    test's garbage cycles. Figures in docs/development.md, "Garbage collection".
    """
    global _server_process
    _server_process = True


def service_started() -> None:
    """Called when a service has started (`ServiceRuntime.start`); tunes the collector in a server process only."""
    if _server_process:
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
