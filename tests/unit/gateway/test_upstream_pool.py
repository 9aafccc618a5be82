"""The gateway's connections to the services, against a scripted local server (real sockets, no service).

Each test's server reads one request at a time and answers with the bytes the test gives (or hangs up), so
the framing cases a general client gets for free are pinned here: keep-alive reuse, `connection: close`,
chunked bodies, HEAD, interim answers, a service dropping the connection before or during its answer (only
an idempotent request is repeated, and only when nothing had come), garbage, timeouts, and requests whose
target or headers would break HTTP/1.1's framing.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from shared.internal_auth import Caller, TokenSigner, generate_keypair

from gateway.upstream import BadRequestTarget, Upstreams, UpstreamUnavailable

CALLER = Caller("k1", "admin")
OK = b"HTTP/1.1 200 OK\r\ndate: x\r\nserver: uvicorn\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

Script = Callable[[int, bytes], bytes | None]  # (request number on the server, request head) -> answer, or None: hang up


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[Upstreams, list[bytes], list[int]]]:
    """`Upstreams` to a server answering each request by `script`; yields it, the requests seen and the
    connection number each came on."""
    seen: list[bytes] = []
    on_connection: list[int] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        mine = connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
                )
                body = await reader.readexactly(length) if length else b""
                seen.append(head + body)
                on_connection.append(mine)
                answer = script(len(seen), head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstreams = Upstreams(
        {"interaction": f"http://127.0.0.1:{port}"},
        signer=TokenSigner(generate_keypair()[0]),
        connect_timeout_s=1,
        request_timeout_s=1,
        max_connections=4,
        breaker_failures=100,
    )
    await upstreams.start()
    try:
        yield upstreams, seen, on_connection
    finally:
        await upstreams.stop()
        server.close()


async def get(upstreams: Upstreams, method: str = "GET", **kwargs: object) -> object:
    return await upstreams.request("interaction", method, "/v1/x", caller=CALLER, **kwargs)  # type: ignore[arg-type]


async def test_a_connection_is_reused_and_the_request_is_framed_as_sent():
    async with scripted(lambda n, head: OK) as (upstreams, seen, on_connection):
        first = await get(upstreams, query="a=1&b=%20", headers={"x-api-key": "secret", "accept": "application/json"})
        await get(upstreams, "POST", body=b'{"a":1}')
    assert first.status == 200 and first.body == b"{}"  # type: ignore[attr-defined]
    # The gateway's server sets its own date and server headers: the service's are not passed back as well.
    assert first.headers == [(b"content-type", b"application/json")]  # type: ignore[attr-defined]
    assert on_connection == [1, 1]
    head = seen[0].split(b"\r\n")
    assert head[0] == b"GET /v1/x?a=1&b=%20 HTTP/1.1"
    assert b"accept: application/json" in head and not any(h.startswith(b"x-api-key") for h in head)
    assert any(h.startswith(b"x-internal-token: ") for h in head)
    assert seen[1].startswith(b"POST /v1/x HTTP/1.1\r\n") and seen[1].endswith(b"content-length: 7\r\n\r\n" + b'{"a":1}')


async def test_the_correlation_id_and_token_are_the_gateways_and_sent_once():
    from shared.log import correlation_id

    forged = {"x-correlation-id": "c" * 500, "x-internal-token": "forged", "host": "evil", "content-length": "99"}
    token = correlation_id.set("gw-cid")
    try:
        async with scripted(lambda n, head: OK) as (upstreams, seen, _):
            await get(upstreams, "POST", body=b"[]", headers=forged)
    finally:
        correlation_id.reset(token)
    lines = seen[0].split(b"\r\n")
    assert [line for line in lines if line.startswith(b"x-correlation-id")] == [b"x-correlation-id: gw-cid"]
    assert len([line for line in lines if line.startswith(b"x-internal-token")]) == 1 and b"forged" not in seen[0]
    assert [line for line in lines if line.startswith(b"host")] == [lines[1]] and b"evil" not in seen[0]
    assert [line for line in lines if line.startswith(b"content-length")] == [b"content-length: 2"]


async def test_chunked_answers_and_connection_close():
    chunked = b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nz"
    answers = {1: chunked, 2: closing, 3: OK}
    async with scripted(lambda n, head: answers[n]) as (upstreams, _, on_connection):
        one, two, three = [await get(upstreams) for _ in range(3)]
    assert (one.status, one.body) == (201, b"abcde")  # type: ignore[attr-defined]
    assert not any(k == b"transfer-encoding" for k, _ in one.headers)  # type: ignore[attr-defined]
    assert two.body == b"z" and three.body == b"{}"  # type: ignore[attr-defined]
    assert on_connection == [1, 1, 2]  # the answer that said close was the last on its connection


async def test_head_and_interim_answers():
    head_answer = b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n"  # HEAD: the length of a body not sent
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK
    answers = {1: head_answer, 2: interim}
    async with scripted(lambda n, head: answers[n]) as (upstreams, _, _):
        head = await get(upstreams, "HEAD")
        after = await get(upstreams)
    assert head.status == 200 and head.body == b""  # type: ignore[attr-defined]
    assert after.status == 200 and after.body == b"{}" and (b"link", b"</a>") not in after.headers  # type: ignore[attr-defined]


async def test_a_get_dropped_before_any_answer_is_repeated_once_on_a_new_connection():
    async with scripted(lambda n, head: None if n == 1 else OK) as (upstreams, seen, on_connection):
        answer = await get(upstreams)
    assert answer.status == 200 and len(seen) == 2 and on_connection == [1, 2]  # type: ignore[attr-defined]


async def test_a_post_dropped_is_not_repeated():
    async with scripted(lambda n, head: None) as (upstreams, seen, _):
        with pytest.raises(UpstreamUnavailable, match="dropped"):
            await get(upstreams, "POST", body=b"[]")
    assert len(seen) == 1


async def test_a_get_dropped_mid_answer_is_not_repeated():
    half = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"

    def script(n: int, head: bytes) -> bytes | None:
        return half if n == 1 else OK

    async with scripted(script) as (upstreams, seen, _):
        task = asyncio.create_task(get(upstreams))
        await asyncio.sleep(0.2)
        assert not task.done()  # waiting for the rest of the body
        with pytest.raises(UpstreamUnavailable, match="in time"):
            await task


async def test_garbage_is_a_503_and_the_connection_is_not_reused():
    async with scripted(lambda n, head: b"SPAM\r\n\r\n" if n == 1 else OK) as (upstreams, _, on_connection):
        with pytest.raises(UpstreamUnavailable, match="failed mid-request"):
            await get(upstreams)
        assert (await get(upstreams)).status == 200  # type: ignore[attr-defined]
    assert on_connection == [1, 2]


async def test_unasked_bytes_after_an_answer_retire_the_connection():
    async with scripted(lambda n, head: OK + b"HTTP/1.1 200 OK\r\n" if n == 1 else OK) as (upstreams, _, on_connection):
        await get(upstreams)
        await asyncio.sleep(0.05)
        assert (await get(upstreams)).status == 200  # type: ignore[attr-defined]
    assert on_connection == [1, 2]


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/v1/x HTTP/1.1\r\nx-evil: 1\r\n\r\nGET /v1/admin", "", {}),
        ("/v1/x", "a=1 HTTP/1.1", {}),
        ("/v1/x", "", {"x-a": "1\r\nx-internal-token: forged"}),
        ("/v1/x", "", {"x-a": "1\nx-b: 2"}),
        ("v1/x", "", {}),
    ],
)
async def test_a_request_that_would_break_the_framing_is_refused_before_sending(path, query, headers):
    async with scripted(lambda n, head: OK) as (upstreams, seen, _):
        with pytest.raises(BadRequestTarget):
            await upstreams.request("interaction", "GET", path, caller=CALLER, query=query, headers=headers)
    assert seen == []
