"""Sending to Kafka: the transport's record batches against aiokafka's `send` per message, side by side.

Every relay sends its outbox rows through `KafkaTransport.send_batch` (shared/messaging/kafka.py): since
2026-12-07 it fills one record batch per partition and hands each to the producer whole; before, it called
`producer.send` for each message, which makes a future and goes through the producer's accumulator per message.
The reference here is that: the same producer (idempotent, `acks=all`), `send` per message, every future awaited.
Both send `--sends` rounds of `--batch` messages of ~800 bytes (a relay's batch, keyed by `--keys` customer ids,
a content-type header each) to one topic of the real broker, the two alternating `--rounds` times, each send
awaited before the next as a relay does; it prints this process's CPU and the wall time per message, the best
round of each, and the ratio. The messages are built before the clock starts. Every message must be on the
topic afterwards, or the benchmark raises.
"""

import argparse
import asyncio
import gc
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import uvloop

from bench import harness
from shared.messaging.kafka import KafkaTransport
from shared.messaging.outbox import CONTENT_TYPE_HEADER
from shared.messaging.transport import OutgoingMessage
from shared.serving import GC_YOUNG_THRESHOLD


async def per_message(transport: KafkaTransport, messages: list[OutgoingMessage]) -> None:
    """The reference: aiokafka's `send` for each message (the transport's code before 2026-12-07)."""
    producer = await transport._get_producer()
    futures = [await producer.send(m.topic, m.value, key=m.key, headers=m.headers or None) for m in messages]
    for future in futures:
        await future


async def record_batches(transport: KafkaTransport, messages: list[OutgoingMessage]) -> None:
    await transport.send_batch(messages)


WAYS: dict[str, Callable[[KafkaTransport, list[OutgoingMessage]], Awaitable[None]]] = {
    "send per message": per_message,
    "record batches": record_batches,
}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench kafka_send", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=120, help="messages per send (a relay batch)")
    parser.add_argument("--sends", type=int, default=250, help="sends per way and round")
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys (customer ids)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the lowest CPU of each way is reported")
    args = parser.parse_args(argv)
    topic = f"bench-kafka-send-{uuid.uuid4().hex[:8]}"
    with harness.servers() as (_, bootstrap), harness.topics(bootstrap, [topic]):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            best = runner.run(_bench(bootstrap, topic, args))
    print(f"{args.sends} sends of {args.batch} messages per way and round, best of {args.rounds} by CPU")
    print(f"{'way':<20}{'CPU µs/message':>16}{'wall µs/message':>17}")
    for way, b in best.items():
        print(f"{way:<20}{b['cpu_us']:>16.1f}{b['wall_us']:>17.1f}")
    ratio = round(best["send per message"]["cpu_us"] / best["record batches"]["cpu_us"], 2)
    print(f"ratio send per message / record batches, same run: CPU {ratio}x")
    return {
        "benchmark": "kafka_send",
        "batch": args.batch,
        "sends": args.sends,
        "rounds": args.rounds,
        "per_message": best,
        "ratio_cpu_per_message_to_batches": ratio,
    }


async def _bench(bootstrap: str, topic: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    transport = KafkaTransport(bootstrap, client_id="bench-kafka-send")
    keys = [str(uuid.uuid4()).encode() for _ in range(args.keys)]
    n = 0

    def messages(count: int) -> list[OutgoingMessage]:
        nonlocal n
        out = [
            OutgoingMessage(topic, os.urandom(400).hex().encode(), keys[(n + i) % len(keys)], [CONTENT_TYPE_HEADER])
            for i in range(count)
        ]
        n += count
        return out

    try:
        await transport.send_batch(messages(args.batch))  # the topic's metadata and the producer, before measuring
        best: dict[str, dict[str, float]] = {}
        # The collector as a service process tunes it (shared/serving.py): what exists now is frozen.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        for round_ in range(args.rounds):
            for way, send in WAYS.items():
                sends = [messages(args.batch) for _ in range(args.sends)]
                cpu, started = time.process_time(), time.perf_counter()
                for batch in sends:
                    await send(transport, batch)
                total = args.sends * args.batch
                cost = {
                    "cpu_us": round((time.process_time() - cpu) / total * 1e6, 1),
                    "wall_us": round((time.perf_counter() - started) / total * 1e6, 1),
                }
                print(f"  round {round_ + 1} {way:<18} CPU {cost['cpu_us']:5.1f} µs/message, wall {cost['wall_us']:5.1f}")
                if way not in best or cost["cpu_us"] < best[way]["cpu_us"]:
                    best[way] = cost
                del sends
                gc.collect()
        on_topic = sum((await transport.end_offsets([topic])).values())
        if on_topic != n:
            raise AssertionError(f"{n} messages sent, {on_topic} on the topic")
        return best
    finally:
        await transport.stop()
