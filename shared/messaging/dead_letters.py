"""Operating the dead-letter topics: list what is there and why, and replay it once the cause is fixed.

    python -m shared.messaging.dead_letters list <topic>.dlq [--limit N]
    python -m shared.messaging.dead_letters replay <topic>.dlq

`replay` sends every dead letter not replayed before back to the topic it came from (its `dlq_topic`
header), with the `dlq_*` headers removed, and remembers how far it got in the consumer group
`<dlq topic>.replay`, so running it twice does not send anything twice. The consumers' inboxes make
a replay of an event that did get applied in the meantime a no-op.
"""

import argparse
import asyncio
import json
import os
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.messaging.kafka import KafkaTransport
from shared.messaging.transport import OutgoingMessage


def _consumer(bootstrap: str, topic: str, group: str | None) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def list_dead_letters(bootstrap: str, topic: str, limit: int = 100) -> list[dict]:
    consumer = _consumer(bootstrap, topic, None)
    await consumer.start()
    out: list[dict] = []
    try:
        while len(out) < limit:
            batch = await consumer.getmany(timeout_ms=1000, max_records=limit - len(out))
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in r.headers if k.startswith("dlq_")}
                    out.append(
                        {
                            "partition": r.partition,
                            "offset": r.offset,
                            "key": r.key.decode("utf-8", "replace") if r.key else None,
                            **headers,
                            "value": (r.value or b"")[:500].decode("utf-8", "replace"),
                        }
                    )
    finally:
        await consumer.stop()
    return out


async def replay_dead_letters(bootstrap: str, topic: str) -> int:
    consumer = _consumer(bootstrap, topic, f"{topic}.replay")
    transport = KafkaTransport(bootstrap, client_id="dead-letter-replay")
    await consumer.start()
    replayed = 0
    try:
        while batch := await consumer.getmany(timeout_ms=2000, max_records=500):
            records = [r for part in batch.values() for r in part]
            await transport.send_batch(
                [
                    OutgoingMessage(
                        topic=dict(r.headers).get("dlq_topic", b"").decode() or topic.removesuffix(".dlq"),
                        value=r.value or b"",
                        key=r.key,
                        headers=[h for h in r.headers if not h[0].startswith("dlq_")],
                    )
                    for r in records
                ]
            )
            await consumer.commit({TopicPartition(tp.topic, tp.partition): part[-1].offset + 1 for tp, part in batch.items()})
            replayed += len(records)
    finally:
        await consumer.stop()
        await transport.stop()
    return replayed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.messaging.dead_letters", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("topic", help="the dead-letter topic, e.g. interaction.events.dlq")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args()
    if args.command == "list":
        for letter in asyncio.run(list_dead_letters(args.bootstrap, args.topic, args.limit)):
            print(json.dumps(letter, ensure_ascii=False))
    else:
        n = asyncio.run(replay_dead_letters(args.bootstrap, args.topic))
        print(f"replayed {n} dead letters from {args.topic}", file=sys.stderr)


if __name__ == "__main__":
    main()
