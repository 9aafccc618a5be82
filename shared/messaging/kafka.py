"""Kafka transport on aiokafka.

Producer: idempotent (`acks=all`), every send bounded by a timeout because an idempotent producer never
expires batches on its own and can hang while the broker is down (aiokafka #1101); after a failure the
producer is rebuilt so a wedged one never blocks the relay. Consumer: manual commits only, from the
earliest offset for a new group (aiokafka defaults to auto-commit and `latest`, which silently skips).
"""

import asyncio
import functools
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from shared.messaging.transport import CommitFailed, IncomingMessage, OutgoingMessage, TransportError, merged_offsets, subscribed

log = logging.getLogger(__name__)


class _MemoisedPartitioner:
    """aiokafka's default placement (murmur2 of the key, as the Java client), with the hash memoised.

    aiokafka's murmur2 is pure Python (~20 µs a key, a fifth of the relay's CPU) and a relay sends the same
    keys (customer ids) again and again. Same partition for a key as the default, so order per key holds.
    """

    def __init__(self, size: int = 1 << 16) -> None:
        self._hash = functools.lru_cache(maxsize=size)(murmur2)

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return DefaultPartitioner()(key, all_partitions, available)
        return all_partitions[(self._hash(key) & 0x7FFFFFFF) % len(all_partitions)]


class KafkaTransport:
    def __init__(self, bootstrap_servers: str, client_id: str = "crm") -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = _MemoisedPartitioner()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        # Lazy: a service must start (and report not-ready) while the broker is down.
        pass

    async def stop(self) -> None:
        await self._drop_producer()

    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self.client_id,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                    max_batch_size=1024 * 1024,
                    request_timeout_ms=15000,
                    partitioner=self._partitioner,
                )
                try:
                    await asyncio.wait_for(producer.start(), 15)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await _stop_quietly(producer)
                    raise TransportError(f"cannot reach Kafka at {self.bootstrap_servers}: {exc!r}") from exc
                self._producer = producer
            return self._producer

    async def _drop_producer(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer)

    async def send_batch(self, messages: list[OutgoingMessage], timeout_s: float = 30.0) -> None:
        if not messages:
            return
        producer = await self._get_producer()
        try:
            async with asyncio.timeout(timeout_s):
                futures = await self._enqueue(producer, messages)
                # Awaited in turn rather than gathered: gather wraps each of many futures in a callback.
                for future in futures:
                    await future
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._drop_producer()
            raise TransportError(f"Kafka did not acknowledge {len(messages)} messages: {exc!r}") from exc

    async def _enqueue(self, producer: AIOKafkaProducer, messages: list[OutgoingMessage]) -> list[asyncio.Future]:
        """Hands the messages to the producer as record batches, one open per partition (a full one goes and
        another begins), each partition's in the order given; the futures of the batches.

        `producer.send` per message makes a future and goes through the accumulator for each: 1.74x the CPU
        (18.1 against 10.4 µs a message, `python -m bench kafka_send`: sends of 120 messages of ~800 bytes)."""
        partitions: dict[str, tuple[list[int], list[int]]] = {}
        open_batches: dict[tuple[str, int], BatchBuilder] = {}
        futures = []
        for m in messages:
            if m.topic not in partitions:
                every = sorted(await producer.partitions_for(m.topic))  # waits for the topic's metadata
                available = producer.client.cluster.available_partitions_for_topic(m.topic) or ()
                partitions[m.topic] = (every, sorted(available))
            partition = self._partitioner(m.key, *partitions[m.topic])
            batch = open_batches.get((m.topic, partition))
            if batch is None:
                batch = open_batches[(m.topic, partition)] = producer.create_batch()
            if batch.append(timestamp=None, key=m.key, value=m.value, headers=m.headers) is None:  # full
                futures.append(await producer.send_batch(batch, m.topic, partition=partition))
                batch = open_batches[(m.topic, partition)] = producer.create_batch()
                if batch.append(timestamp=None, key=m.key, value=m.value, headers=m.headers) is None:
                    raise TransportError(f"a message of {len(m.value or b'')} bytes does not fit in a record batch")
        for (topic, partition), batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    def consumer(self, group_id: str, topics: list[str], pattern: str | None = None) -> "KafkaConsumer":
        return KafkaConsumer(self.bootstrap_servers, group_id, topics, self.client_id, pattern)

    async def adopt_offsets(
        self, group_id: str, lineages: Sequence[Sequence[str]], topics: list[str], pattern: str | None = None
    ) -> dict[tuple[str, int], int]:
        try:
            offsets = await self._former_offsets(group_id, lineages, topics, pattern)
            if not offsets:
                return {}
            # The admin client cannot write a group's offsets: a consumer of the new group with the partitions
            # assigned by hand (it joins no group) commits them. The broker accepts such a commit only while the
            # group has no members, so it never moves a group that another replica already consumes in.
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers, group_id=group_id, client_id=self.client_id, enable_auto_commit=False
            )
            try:
                async with asyncio.timeout(30):
                    await consumer.start()
                    consumer.assign([TopicPartition(t, p) for t, p in offsets])
                    await consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
            finally:
                await _stop_quietly(consumer)
        except CommitFailedError as exc:
            log.info("group %s has members already, its offsets are left as they are: %r", group_id, exc)
            return {}
        except (KafkaError, OSError, TimeoutError) as exc:
            raise TransportError(f"could not copy the offsets of {lineages} to {group_id}: {exc!r}") from exc
        log.info("group %s starts where %s left off: %d partitions", group_id, lineages, len(offsets))
        return offsets

    async def _former_offsets(
        self, group_id: str, lineages: Sequence[Sequence[str]], topics: list[str], pattern: str | None
    ) -> dict[tuple[str, int], int]:
        """`merged_offsets` of the lineages' committed offsets, or {} if `group_id` has its own."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id)
        try:
            async with asyncio.timeout(30):
                await admin.start()
                if await _group_offsets(admin, group_id, topics, pattern):
                    return {}
                return merged_offsets(
                    [[await _group_offsets(admin, group, topics, pattern) for group in lineage] for lineage in lineages]
                )
        finally:
            await admin.close()

    async def end_offsets(self, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        # The admin client lists the topics and their partitions (a consumer's `topics()` does not keep the
        # metadata it fetched, so it cannot name their partitions); a consumer outside any group reads the ends.
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id, enable_auto_commit=False)
        try:
            async with asyncio.timeout(15):
                await admin.start()
                matching = [t for t in await admin.list_topics() if subscribed(t, topics, pattern)]
                described = await admin.describe_topics(matching) if matching else []
                partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
                await consumer.start()
                ends = await consumer.end_offsets(partitions) if partitions else {}
        except (KafkaError, OSError, TimeoutError) as exc:
            raise TransportError(f"could not read the end offsets of {topics or pattern}: {exc!r}") from exc
        finally:
            await admin.close()
            await _stop_quietly(consumer)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def committed_offsets(self, group_id: str, topics: list[str], pattern: str | None = None) -> dict[tuple[str, int], int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, client_id=self.client_id)
        try:
            async with asyncio.timeout(15):
                await admin.start()
                return await _group_offsets(admin, group_id, topics, pattern)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise TransportError(f"could not read the offsets of {group_id}: {exc!r}") from exc
        finally:
            await admin.close()

    async def check(self) -> None:
        producer = await self._get_producer()
        try:
            async with asyncio.timeout(5):
                ok = await producer.client.force_metadata_update()
        except (KafkaError, OSError, TimeoutError) as exc:
            raise TransportError(f"Kafka metadata request failed: {exc!r}") from exc
        if not ok:
            raise TransportError(f"Kafka at {self.bootstrap_servers} did not answer a metadata request")


# How long the broker may hold a fetch that finds no new data. aiokafka sends no fetch to a broker while one is
# in flight there, and it fetches the other partitions (often idle: clv.events for lifecycle) while a batch is
# applied for longer than its prefetch backoff (0.1 s); the partitions that batch came from become fetchable again
# only when that fetch returns. At aiokafka's default 500 ms the next events of a busy partition waited up to half
# a second after a slow batch (bench/consumer_wait.py: p95 572 ms vs 290 ms at 100 ms, batches of 150 ms). An
# idle consumer sends a fetch every 100 ms instead of every 500 ms.
FETCH_MAX_WAIT_MS = 100


class KafkaConsumer:
    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: list[str],
        client_id: str,
        pattern: str | None = None,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            *([] if pattern else topics),
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300_000,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=3_000,
            fetch_max_wait_ms=fetch_max_wait_ms,
            # A pattern subscription sees topics created after it started at the next metadata refresh.
            metadata_max_age_ms=5_000 if pattern else 30_000,
        )
        if pattern:
            self._consumer.subscribe(pattern=pattern)

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            await _stop_quietly(self._consumer)
            raise TransportError(f"cannot start consumer: {exc!r}") from exc

    async def stop(self) -> None:
        await _stop_quietly(self._consumer)

    async def getmany(self, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except (KafkaError, OSError) as exc:
            raise TransportError(f"fetch failed: {exc!r}") from exc
        return [
            IncomingMessage(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ()))
            for records in batches.values()
            for r in records
        ]

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        try:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            raise CommitFailed(repr(exc)) from exc
        except (KafkaError, OSError) as exc:
            raise TransportError(f"commit failed: {exc!r}") from exc


async def _group_offsets(
    admin: AIOKafkaAdminClient, group_id: str, topics: list[str], pattern: str | None
) -> dict[tuple[str, int], int]:
    """The offsets `group_id` committed on `topics` (or those matching `pattern`)."""
    listed = await admin.list_consumer_group_offsets(group_id)
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in listed.items()
        if meta.offset >= 0 and subscribed(tp.topic, topics, pattern)
    }


async def _stop_quietly(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    try:
        await asyncio.wait_for(client.stop(), 10)
    except Exception as exc:  # noqa: BLE001 - a client that will not stop cleanly is dropped either way
        log.warning("kafka client did not stop cleanly: %r", exc)
