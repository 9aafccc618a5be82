"""The gateway's client to the services: its keep-alive connections against aiohttp's client, side by side.

A uvicorn process (one worker, uvloop and httptools as the services run) answers every request with the same
~400-byte JSON document, so the only work measured is the client's. In this process, on uvloop, the two
clients take turns (`--rounds` alternating rounds of `--requests` requests each):

- `aiohttp`: the reference, `aiohttp.ClientSession` configured as the gateway had it (pooled connector, no
  auto-decompression, no User-Agent), reading each whole body;
- `upstreams`: `gateway.upstream.Upstreams`, the gateway's client (signed token header, breaker, timeout).

Each sends the same request (path, query, the headers a proxied read forwards) with `--concurrency` requests
in flight. The figure is the client process's CPU time per request (user + system, `time.process_time`), the
median over its rounds, and the ratio aiohttp / upstreams.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request

import aiohttp
import uvloop
from yarl import URL

from bench import harness
from deploy.local.ports import free_port
from shared.internal_auth import Caller, TokenSigner, generate_keypair

BODY = b'{"customer_id":"0b6f6c3e-8f1e-4e43-9a55-2f1a3c1d9e77","stage":"development","since":"2026-12-01T10:00:00Z",' + (
    b'"history":[' + b",".join([b'{"stage":"acquisition","at":"2026-11-20T10:00:00Z"}'] * 5) + b"]}"
)
HEADERS = {
    "accept": "application/json",
    "user-agent": "Mozilla/5.0 (frontend)",
    "accept-encoding": "gzip, deflate",
    "x-correlation-id": "3f2b8c1e9d4a4b7f8e6d5c4b3a291807",
}


async def app(scope, receive, send) -> None:  # the server's ASGI app
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})


async def rounds(url: str, requests: int, concurrency: int, count: int) -> dict[str, list[float]]:
    signer = TokenSigner(generate_keypair()[0])
    caller = Caller("bench", "frontend")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=10, sock_connect=1),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )
    from gateway.upstream import Upstreams

    upstreams = Upstreams({"lifecycle": url}, signer=signer, connect_timeout_s=1, request_timeout_s=10, max_connections=200)
    await upstreams.start()
    path = "/v1/customers/0b6f6c3e-8f1e-4e43-9a55-2f1a3c1d9e77/lifecycle"

    async def with_aiohttp() -> None:
        headers = HEADERS | {"x-internal-token": signer.token("lifecycle", caller)}
        target = URL(f"{url}{path}?include=history", encoded=True)
        async with session.request("GET", target, headers=headers) as resp:
            body = await resp.read()
        if resp.status != 200 or body != BODY:
            raise RuntimeError(f"aiohttp got {resp.status}")

    async def with_upstreams() -> None:
        resp = await upstreams.request("lifecycle", "GET", path, caller=caller, query="include=history", headers=HEADERS)
        if resp.status != 200 or resp.body != BODY:
            raise RuntimeError(f"upstreams got {resp.status}")

    async def run(one) -> float:
        per_worker = requests // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                await one()

        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - started) / (per_worker * concurrency) * 1e6

    out: dict[str, list[float]] = {"aiohttp": [], "upstreams": []}
    try:
        await run(with_aiohttp)  # warm-up: connections made, code paths hot
        await run(with_upstreams)
        for i in range(count):
            order = [("aiohttp", with_aiohttp), ("upstreams", with_upstreams)]
            for name, one in order if i % 2 == 0 else reversed(order):
                out[name].append(await run(one))
                print(f"  round {i + 1}/{count} {name}: {out[name][-1]:.1f} µs CPU per request")
    finally:
        await session.close()
        await upstreams.stop()
    return out


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench upstream_client", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per round and client")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per client")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.upstream_client:app", "--port", str(port), "--log-level", "warning"],
        cwd=harness.REPO,
        env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the benchmark's server did not start") from None
                time.sleep(0.1)
        print(f"{args.rounds} alternating rounds of {args.requests} requests, {args.concurrency} in flight ...")
        results = uvloop.run(rounds(url, args.requests, args.concurrency, args.rounds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    aio, ours = statistics.median(results["aiohttp"]), statistics.median(results["upstreams"])
    print(f"CPU per request (median of {args.rounds}): aiohttp {aio:.1f} µs, upstreams {ours:.1f} µs: {aio / ours:.2f}x less")
    return {
        "benchmark": "upstream_client",
        "requests": args.requests,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "aiohttp_cpu_us": round(aio, 1),
        "upstreams_cpu_us": round(ours, 1),
        "aiohttp_over_upstreams": round(aio / ours, 2),
        "rounds_us": {k: [round(x, 1) for x in v] for k, v in results.items()},
    }
