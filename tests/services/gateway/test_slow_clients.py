"""Security issue, class 7 (gateway part): slow clients were held open indefinitely.

Raw sockets play the slow clients: one sends nothing, one trickles its headers, one sends headers and then
none of the announced body, one trickles its body. Each must be closed by the gateway (the wait is a
generous hang detector, not a performance figure), while a large post at a normal pace that lasts longer
than the body timeout goes through whole.
"""

import asyncio
import contextlib

from tests.services.gateway.conftest import ADMIN_KEY, gateway_stack
from tests.services.gateway.test_limits_and_routing import recording_service

HANG = 60.0  # seconds: far beyond the 1 s timeouts below


async def _held_until_closed(url: str, head: bytes, trickle: bytes = b"", every_s: float = 0.05) -> bytes | None:
    """Sends `head` at once, then `trickle` a byte at a time; returns what the server answered before closing
    (None: it reset the connection, which a close with a byte of ours still unread in its buffer does)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def dribble() -> None:
        with contextlib.suppress(ConnectionError):
            for i in range(len(trickle)):
                writer.write(trickle[i : i + 1])
                await writer.drain()
                await asyncio.sleep(every_s)

    writer.write(head)
    sender = asyncio.create_task(dribble())
    try:
        return await asyncio.wait_for(reader.read(), HANG)  # until the server closes the connection
    except ConnectionResetError:
        return None
    finally:
        sender.cancel()
        writer.close()


async def test_slow_clients_are_cut_off_and_normal_posts_are_not(database_url: str) -> None:
    async with (
        recording_service() as (upstream, seen),
        gateway_stack(
            database_url,
            services=(),
            interaction_url=upstream,
            http_header_timeout_s=1.0,
            http_body_timeout_s=1.0,
            http_body_min_bytes_per_s=1000.0,
        ) as stack,
    ):
        url = stack.gateway_url
        post = (
            f"POST /v1/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {ADMIN_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        silent, headers_trickled, body_missing, body_trickled = await asyncio.gather(
            _held_until_closed(url, b""),
            _held_until_closed(url, b"GET /health/live HTTP/1.1\r\n", b"X-Padding: " + b"a" * 5000),
            _held_until_closed(url, post),
            _held_until_closed(url, post, b"[" + b" " * 5000),
        )
        assert silent is not None and silent.startswith(b"HTTP/1.1 408")
        assert headers_trickled is None or headers_trickled.startswith(b"HTTP/1.1 408")
        assert body_missing == b"", "cut off mid-body: closed, nothing answered"
        assert body_trickled in (b"", None)
        assert [s for s in seen if s["path"] != "/openapi.json"] == [], "no truncated body was forwarded"

        # ~1 MB (the stand-in service takes up to 1 MiB) over ~1.5 s: longer than the 1 s body timeout, at a
        # pace far above the minimum rate.
        chunk, chunks = b" " * 65536, 15
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                (
                    f"POST /v1/events HTTP/1.1\r\nHost: gw\r\nX-API-Key: {ADMIN_KEY}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(chunk) * chunks + 2}\r\n\r\n["
                ).encode()
            )
            for _ in range(chunks):
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.1)
            writer.write(b"]")
            answer = await asyncio.wait_for(reader.read(), HANG)
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert len(seen[-1]["body"]) == len(chunk) * chunks + 2
