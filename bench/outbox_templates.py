"""A run's membership events in the outbox: templated rows against whole payloads, written and relayed.

A segmentation run stores each event template once and writes an outbox row per event that carries only its
event id, topic, key and the template's id; the relay fills the template when it sends (shared/messaging/
outbox.py). The reference is the same events as rows with their whole JSON payload, as every event was stored
before. Both are measured side by side in one run, on a fresh migrated Postgres, the same customers and
segments: writing `--events` rows with one binary COPY in one transaction (as the run does: wall seconds,
Postgres backends' CPU, WAL), then relaying the first `--relay-events` of them through `OutboxRelay.relay_once`
to a transport that drops the messages (no broker: the relay's own CPU per event and Postgres' CPU per event).
Every relayed message is checked to parse as the segment's membership event with the row's ids.
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from bench import harness
from shared.contracts.envelope import Envelope, EnvelopeTemplate
from shared.contracts.segmentation import SegmentMembershipChanged
from shared.db import asyncpg_dsn, make_engine, make_session_factory
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.transport import OutgoingMessage

from segmentation.runs.binary_copy import CHUNK_ROWS, copy_rows
from segmentation.segments.membership import Segment
from segmentation.segments.run_diff import ID_LENGTH, EventRows, random_uuids, time_ordered_uuids, uuid_text
from segmentation.tables import messaging

SEGMENTS = 11  # the default RFM scheme's


class Checked:
    """A transport that checks what it is given and drops it."""

    def __init__(self) -> None:
        self.sent = 0

    async def send_batch(self, messages: list[OutgoingMessage]) -> None:
        for m in messages[:: max(1, len(messages) // 10)]:  # a sample: parsing is not the relay's cost
            env = Envelope.from_json(m.value)
            if env.subject != m.key.decode() or env.payload(SegmentMembershipChanged).change != "entered":
                raise AssertionError(f"the relay sent a wrong event: {m.value[:200]!r}")
        self.sent += len(messages)


def whole_rows(events: EventRows, scope: list[Segment], customers: np.ndarray, positions: np.ndarray) -> Iterator[bytes]:
    """The reference: binary COPY rows (event_id, topic, key, payload) with each event's whole JSON."""
    for position, segment in enumerate(scope):
        members = customers[positions == position]
        parts, holes = events.template(segment, "entered")
        row = bytearray((4).to_bytes(2, "big"))
        row += ID_LENGTH.to_bytes(4, "big")
        event_blank = len(row)
        row += b" " * ID_LENGTH + len(events.topic).to_bytes(4, "big") + events.topic + ID_LENGTH.to_bytes(4, "big")
        key_blank = len(row)
        row += b" " * ID_LENGTH
        # The version (the row's id in the templated rows) is one seven-digit number here: a million rows' ids.
        blanks = {"event_id": "e" * ID_LENGTH, "key": "k" * ID_LENGTH, "id": "1000000"}
        payload = EnvelopeTemplate(parts, holes).fill(blanks)
        row += len(payload).to_bytes(4, "big")
        offsets, at = {"event_id": [], "key": [], "id": []}, len(row) + len(parts[0])
        for hole, part in zip(holes, parts[1:], strict=True):
            offsets[hole].append(at)
            at += len(blanks[hole]) + len(part)
        row += payload
        template = np.frombuffer(bytes(row), dtype=np.uint8)
        for start in range(0, len(members), CHUNK_ROWS):
            chunk = members[start : start + CHUNK_ROWS]
            rows = np.tile(template, (len(chunk), 1))
            event_text, key_text = uuid_text(time_ordered_uuids(len(chunk))), uuid_text(chunk)
            for offset in [event_blank, *offsets["event_id"]]:
                rows[:, offset : offset + ID_LENGTH] = event_text
            for offset in [key_blank, *offsets["key"]]:
                rows[:, offset : offset + ID_LENGTH] = key_text
            yield rows.tobytes()


async def measure(url: str, n: int, relay_n: int, rounds: int) -> dict:
    engine = make_engine(url, pool_size=4)
    sessions = make_session_factory(engine)
    outbox = Outbox(messaging, "segmentation")
    scope = [Segment(uuid.uuid4(), f"rfm:bench:s{i}", f"Segment {i}", "rfm") for i in range(SEGMENTS)]
    customers = np.sort(random_uuids(n))
    positions = np.random.default_rng(1).integers(0, SEGMENTS, n)
    figures: dict[str, list[dict]] = {"templated": [], "whole": []}
    try:
        for _ in range(rounds):
            for kind in figures:
                async with sessions.begin() as session:
                    await session.execute(sa.text("TRUNCATE segmentation.outbox, segmentation.outbox_template"))
                async with sessions() as session:
                    await session.execute(sa.text("CHECKPOINT"))
                events = EventRows(outbox, datetime.now(UTC), uuid.uuid4())
                before, started = await harness.server_cost(sessions), time.perf_counter()
                async with sessions.begin() as session:
                    if kind == "templated":
                        templates = await events.templates(session, scope, "entered", positions)
                        rows, fields = events.rows(templates, customers, positions), ["event_id", "topic", "key", "template_id"]
                    else:
                        rows, fields = whole_rows(events, scope, customers, positions), ["event_id", "topic", "key", "payload"]
                    await copy_rows(session, "outbox", "segmentation", fields, rows)
                write_s, write = time.perf_counter() - started, harness.cost_since(before, await harness.server_cost(sessions))

                transport = Checked()
                relay = OutboxRelay(
                    engine=engine, dsn=asyncpg_dsn(url), tables=messaging, schema="segmentation", transport=transport
                )
                before, started, cpu = await harness.server_cost(sessions), time.perf_counter(), time.process_time()
                while transport.sent < relay_n and await relay.relay_once():
                    pass
                relay_s, relay_cpu = time.perf_counter() - started, time.process_time() - cpu
                relayed = harness.cost_since(before, await harness.server_cost(sessions))
                figure = {
                    "write_s": round(write_s, 2),
                    "write_postgres_cpu_s": write["postgres_cpu_s"],
                    "write_wal_mb": write["wal_mb"],
                    "relayed": transport.sent,
                    "relay_events_per_s": round(transport.sent / relay_s),
                    "relay_process_us_per_event": round(relay_cpu / transport.sent * 1e6, 1),
                    "relay_postgres_us_per_event": round(relayed["postgres_cpu_s"] / transport.sent * 1e6, 1)
                    if relayed["postgres_cpu_s"] is not None
                    else None,
                }
                figures[kind].append(figure)
                print(
                    f"{kind:<9} write {n:,} rows {figure['write_s']:5.2f} s, Postgres CPU {figure['write_postgres_cpu_s']} s, "
                    f"WAL {figure['write_wal_mb']} MB | relay {figure['relayed']:,} events: "
                    f"{figure['relay_events_per_s']:,}/s, {figure['relay_process_us_per_event']} µs relay CPU + "
                    f"{figure['relay_postgres_us_per_event']} µs Postgres CPU per event",
                    flush=True,
                )
    finally:
        await engine.dispose()
    best = {k: min(v, key=lambda f: f["write_postgres_cpu_s"] or f["write_s"]) for k, v in figures.items()}
    ratio = {
        "write_postgres_cpu": round(best["whole"]["write_postgres_cpu_s"] / best["templated"]["write_postgres_cpu_s"], 2),
        "write_wal": round(best["whole"]["write_wal_mb"] / best["templated"]["write_wal_mb"], 2),
    }
    print(
        f"templated rows against whole payloads (best of {rounds}): Postgres CPU to write {ratio['write_postgres_cpu']}x "
        f"less, WAL {ratio['write_wal']}x less"
    )
    return {"events": n, "rounds": figures, "ratio": ratio}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench outbox_templates", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="outbox rows written per round (default 1M)")
    parser.add_argument("--relay-events", type=int, default=200_000, help="of those, relayed per round (default 200k)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with harness.servers() as (server_url, _), harness.database(server_url, ["segmentation"]) as url:
        return asyncio.run(measure(url, args.events, args.relay_events, args.rounds))
