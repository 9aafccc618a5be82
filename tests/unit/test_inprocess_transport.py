"""The in-process transport keeps the semantics the services rely on from Kafka."""

import asyncio

import sqlalchemy as sa

from shared.messaging.inbox import InboxConsumer, Subscription
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.tables import messaging_tables
from shared.messaging.transport import OutgoingMessage, merged_offsets


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


async def test_a_renamed_group_adopts_its_former_groups_offsets_once():
    transport = InProcessTransport(partitions=1)
    await transport.send_batch([OutgoingMessage("t", f"{i}".encode(), key=b"k") for i in range(4)])
    old = transport.consumer("old", ["t"])
    await old.start()
    await old.getmany(timeout_ms=10, max_records=2)
    await old.commit({("t", 0): 2})

    assert await transport.adopt_offsets("new", [["older", "old"]], ["t"]) == {("t", 0): 2}
    new = transport.consumer("new", ["t"])
    await new.start()
    assert [m.value for m in await new.getmany(timeout_ms=10, max_records=10)] == [b"2", b"3"]
    await new.commit({("t", 0): 4})
    # The new group has offsets of its own now: they are never overwritten by the former group's.
    assert await transport.adopt_offsets("new", [["old"]], ["t"]) == {}
    assert await transport.adopt_offsets("other", [["old"]], ["elsewhere"]) == {}


async def test_a_merged_group_starts_each_partition_where_the_slowest_former_group_stands():
    transport = InProcessTransport(partitions=2)
    await transport.send_batch([OutgoingMessage("t", f"{i}".encode(), key=f"k{i % 2}".encode()) for i in range(12)])
    for group, offsets in {"a": {("t", 0): 5, ("t", 1): 2}, "b": {("t", 0): 3, ("t", 1): 4}}.items():
        consumer = transport.consumer(group, ["t"])
        await consumer.start()
        await consumer.commit(offsets)

    assert await transport.adopt_offsets("ab", [["a"], ["b"]], ["t"]) == {("t", 0): 3, ("t", 1): 2}


def test_merged_offsets_follow_each_lineage_and_leave_out_what_one_of_them_never_read():
    renamed = [{}, {("t", 0): 7, ("t", 1): 1}]  # its current name has none yet: the former name's offsets stand
    fresh = [{("t", 0): 4}]  # never read partition 1
    assert merged_offsets([renamed, fresh]) == {("t", 0): 4}
    assert merged_offsets([renamed]) == {("t", 0): 7, ("t", 1): 1}
    assert merged_offsets([renamed, [{}]]) == {}  # a consumer that never committed starts from the beginning
    assert merged_offsets([]) == {}


async def test_caught_up_waits_for_the_group_to_commit_what_was_there_when_asked():
    """The barrier an erasure waits on (InboxConsumer.caught_up): later messages do not hold it back."""
    transport = InProcessTransport(partitions=2)
    await transport.send_batch([OutgoingMessage("p.t", f"{i}".encode(), key=f"k{i}".encode()) for i in range(4)])
    subscription = Subscription(name="s", topics=["t"], event_types={}, handler=lambda *_: None)
    barrier = InboxConsumer(
        group_id="g",
        inbox_name="svc.s",
        subscription=subscription,
        topic_prefix="p.",
        transport=transport,
        session_factory=None,  # type: ignore[arg-type]  # it applies nothing here
        tables=messaging_tables(sa.MetaData(schema="svc")),
    )
    ends = await transport.end_offsets(["p.t"])
    assert sum(ends.values()) == 4
    assert not await barrier.caught_up(timeout_s=0.05, poll_s=0.01)

    consumer = transport.consumer("g", ["p.t"])
    await consumer.start()
    fetched = await consumer.getmany(timeout_ms=10, max_records=10)
    waiting = asyncio.create_task(barrier.caught_up(timeout_s=5, poll_s=0.01))
    await asyncio.sleep(0.05)
    await transport.send_batch([OutgoingMessage("p.t", b"later", key=b"k0")])  # after the question: not waited for
    await consumer.commit({(m.topic, m.partition): m.offset + 1 for m in fetched})
    assert await waiting
    assert await transport.committed_offsets("g", ["p.t"]) == {tp: n for tp, n in ends.items() if n}
