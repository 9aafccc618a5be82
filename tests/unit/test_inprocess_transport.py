"""The in-process transport keeps the semantics the services rely on from Kafka."""

from shared.messaging.inprocess import InProcessTransport
from shared.messaging.transport import OutgoingMessage


async def test_same_key_keeps_order_and_uncommitted_messages_are_redelivered():
    transport = InProcessTransport(partitions=3)
    await transport.send_batch([OutgoingMessage("t", f"{k}:{i}".encode(), key=k.encode()) for i in range(5) for k in "abc"])
    consumer = transport.consumer("g", ["t"])
    await consumer.start()
    first = await consumer.getmany(timeout_ms=10, max_records=100)
    per_key: dict[bytes, list[bytes]] = {}
    for m in first:
        per_key.setdefault(m.key, []).append(m.value)
    assert per_key[b"a"] == [f"a:{i}".encode() for i in range(5)]
    assert len(first) == 15

    # Commit only part of it, restart: the rest comes again, like a Kafka consumer group.
    committed = {(m.topic, m.partition): m.offset + 1 for m in first if m.offset < 2}
    await consumer.commit(committed)
    await consumer.stop()
    again = transport.consumer("g", ["t"])
    await again.start()
    redelivered = await again.getmany(timeout_ms=10, max_records=100)
    assert sorted(m.value for m in redelivered) == sorted(m.value for m in first if m.offset >= 2)
    assert await again.getmany(timeout_ms=10, max_records=100) == []


async def test_another_group_reads_from_the_start():
    transport = InProcessTransport()
    await transport.send_batch([OutgoingMessage("t", b"x", key=b"k")])
    for group in ("g1", "g2"):
        consumer = transport.consumer(group, ["t"])
        await consumer.start()
        assert [m.value for m in await consumer.getmany(timeout_ms=10, max_records=10)] == [b"x"]
