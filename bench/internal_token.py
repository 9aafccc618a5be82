"""Internal token cost: what signing (gateway) and verifying (service) add to one forwarded request.

`cold` is a new token every time (a new caller or an expired token): an Ed25519 signature and its check.
`warm` is the steady state: the gateway reuses its token for a caller for half its lifetime and a service
remembers the tokens it verified, so each side is a dictionary lookup. No servers needed.
"""

import argparse
import asyncio
import time
import timeit

from shared.internal_auth import HEADER, Caller, InternalAuthMiddleware, TokenSigner, TokenVerifier, generate_keypair


async def _app(scope, receive, send) -> None:
    pass


def middleware_us(verifier: TokenVerifier, token: str, number: int, repeat: int) -> float:
    """What the service's middleware adds to a request with a known token: wrapped minus bare ASGI call."""
    wrapped = InternalAuthMiddleware(_app, verifier=verifier)
    scope = {
        "type": "http",
        "path": "/v1/customers/x",
        "headers": [
            (b"host", b"clv:8000"),
            (b"accept", b"*/*"),
            (b"x-correlation-id", b"0" * 32),
            (HEADER.encode(), token.encode()),
        ],
    }

    async def timed(app) -> float:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(number):
                await app(dict(scope), None, None)
            best = min(best, time.perf_counter() - started)
        return best / number * 1e6

    async def both() -> float:
        return await timed(wrapped) - await timed(_app)

    return asyncio.run(both())


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench internal_token", description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings; the best is reported")
    args = parser.parse_args(argv)
    private, public = generate_keypair()
    caller = Caller("3f2b8c1e-0d4a-4e8b-9c51-7a2f6d0e4b19", "frontend")
    verifier = TokenVerifier(public, "clv")

    signer = TokenSigner(private)
    # Distinct callers: every cold call misses the signer's cache, and every token the verifier's.
    fresh = iter(Caller(f"key-{i}", "frontend") for i in range(2 * args.number * args.repeat))
    tokens = iter([signer.token("clv", next(fresh)) for _ in range(args.number * args.repeat)])
    warm_token = signer.token("clv", caller)
    verifier.verify(warm_token)

    def best_us(fn) -> float:
        return min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number * 1e6

    figures = {
        "benchmark": "internal_token",
        "cold_sign_us": best_us(lambda: signer.token("clv", next(fresh))),
        "cold_verify_us": best_us(lambda: verifier.verify(next(tokens))),
        "warm_sign_us": best_us(lambda: signer.token("clv", caller)),
        "warm_verify_us": best_us(lambda: verifier.verify(warm_token)),
    }
    figures["service_middleware_us"] = middleware_us(verifier, warm_token, args.number, args.repeat)
    figures["cold_total_us"] = figures["cold_sign_us"] + figures["cold_verify_us"]
    figures["warm_total_us"] = figures["warm_sign_us"] + figures["warm_verify_us"]
    print(f"the service's middleware with a known token: {figures['service_middleware_us']:.1f} µs per request")
    for side in ("cold", "warm"):
        print(
            f"{side}: sign {figures[f'{side}_sign_us']:.1f} µs + verify {figures[f'{side}_verify_us']:.1f} µs "
            f"= {figures[f'{side}_total_us']:.1f} µs per forwarded request"
        )
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
