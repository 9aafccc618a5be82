"""Consumer wait: produce → fetched latency of a consumer of a busy and an idle topic, per fetch_max_wait_ms.

Lifecycle's facts consumer reads interaction.events (busy) and clv.events (often idle). aiokafka sends no fetch to
a broker while one is in flight there, and while a batch is applied for longer than its prefetch backoff (0.1 s)
it fetches the partitions that hold no buffered data, the idle ones among them: the broker holds that fetch up to
fetch_max_wait_ms, and the busy partitions become fetchable again only when it returns. Here the project's
`KafkaConsumer` runs the inbox's loop (`getmany(500 ms, 500)`, then `--batch-ms` of work per batch, as a
transaction would take) while `--rate` events/s go to the busy topic; each setting of `--waits` is one run with a
fresh consumer group and fresh topics. Prints p50/p95/max of produce → fetched per setting, with the load average (wall times).
"""

import argparse
import asyncio
import os
import time
import uuid

from aiokafka import AIOKafkaProducer

from bench import harness
from shared.messaging.kafka import KafkaConsumer


async def trial(bootstrap: str, busy: str, idle: str, wait_ms: int, args: argparse.Namespace) -> dict:
    consumer = KafkaConsumer(bootstrap, f"bench-wait-{uuid.uuid4().hex[:8]}", [busy, idle], "bench", None, wait_ms)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=True, acks="all")
    await producer.start()
    await consumer.getmany(3000, 1)  # joins the group (auto_offset_reset=earliest: the topic starts empty)
    latencies: list[float] = []
    stop = time.perf_counter() + args.seconds

    async def produce() -> None:
        i = 0
        while time.perf_counter() < stop:
            await producer.send(busy, str(time.perf_counter()).encode(), key=str(i).encode())
            i += 1
            await asyncio.sleep(1 / args.rate)

    task = asyncio.create_task(produce())
    while time.perf_counter() < stop + 1:
        batch = await consumer.getmany(500, 500)
        now = time.perf_counter()
        latencies += [now - float(m.value or b"0") for m in batch if m.topic == busy]
        if batch:
            await asyncio.sleep(args.batch_ms / 1000)
    await task
    await producer.stop()
    await consumer.stop()
    steady = latencies[len(latencies) // 6 :]  # the first seconds include the group's start
    return {
        "events": len(steady),
        "p50_ms": round(harness.percentile(steady, 50) * 1000),
        "p95_ms": round(harness.percentile(steady, 95) * 1000),
        "max_ms": round(max(steady) * 1000),
        "load": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench consumer_wait", description=__doc__.splitlines()[0])
    parser.add_argument("--waits", default="500,100,500,100", help="fetch_max_wait_ms settings, one run each")
    parser.add_argument("--batch-ms", type=float, default=150, help="work per fetched batch (a transaction)")
    parser.add_argument("--rate", type=int, default=300, help="events/s produced to the busy topic")
    parser.add_argument("--seconds", type=float, default=12, help="length of each run")
    args = parser.parse_args(argv)
    figures: dict = {"benchmark": "consumer_wait", "batch_ms": args.batch_ms, "rate": args.rate, "runs": []}
    os.environ.setdefault("DATABASE_URL", "postgresql+asyncpg://unused/unused")  # Kafka only
    with harness.servers() as (_, bootstrap):
        print(f"{args.rate} events/s to a busy topic, an idle one beside it, {args.batch_ms:.0f} ms per batch")
        print(f"{'fetch_max_wait_ms':>18}{'events':>8}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'load':>7}")
        for wait_ms in (int(w) for w in args.waits.split(",")):
            names = [f"bench-wait-busy-{uuid.uuid4().hex[:6]}", f"bench-wait-idle-{uuid.uuid4().hex[:6]}"]
            with harness.topics(bootstrap, names):  # fresh topics per run: each starts empty
                row = asyncio.run(trial(bootstrap, *names, wait_ms, args))
            figures["runs"].append({"fetch_max_wait_ms": wait_ms, **row})
            print(f"{wait_ms:>18}{row['events']:>8}{row['p50_ms']:>8}{row['p95_ms']:>8}{row['max_ms']:>8}{row['load']:>7.2f}")
    return figures
