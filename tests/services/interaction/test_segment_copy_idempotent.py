"""Interaction's copy of segment memberships is idempotent, so its events are not claimed in the inbox
(`Subscription.idempotent`): the membership changes applied again, shuffled and in other batches, leave the copy
as it was, and it holds the newest change per customer and segment."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SOURCE, SegmentMembershipChanged
from shared.contracts.topics import SEGMENTATION_EVENTS
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.transport import IncomingMessage

import interaction.app
from interaction.settings import InteractionSettings


def _stream(rng: random.Random, customers: list[uuid.UUID], segments: list[str]) -> list[SegmentMembershipChanged]:
    start = datetime.now(UTC).replace(microsecond=0)
    return [
        SegmentMembershipChanged(
            customer_id=rng.choice(customers),
            segment_id=uuid.uuid5(uuid.NAMESPACE_URL, key),
            segment_key=key,
            segment_name=key.title(),
            kind="rule",
            change=rng.choice(["entered", "left"]),
            changed_at=start + timedelta(minutes=n),  # distinct times: the newest is one change
        )
        for n, key in enumerate(rng.choice(segments) for _ in range(60))
    ]


def _messages(changes: list[SegmentMembershipChanged], first_offset: int) -> list[IncomingMessage]:
    envelopes = [Envelope.wrap(c, source=SOURCE, subject=str(c.customer_id)) for c in changes]
    return [
        IncomingMessage(SEGMENTATION_EVENTS, 0, first_offset + i, e.subject.encode(), e.to_json(), [])
        for i, e in enumerate(envelopes)
    ]


async def _copy(session) -> list[tuple]:
    rows = await session.execute(
        sa.text("SELECT customer_id, segment_key, member, changed_at FROM interaction.segment_membership ORDER BY 1, 2")
    )
    return [tuple(r) for r in rows]


async def test_the_membership_copy_is_the_same_after_its_events_come_again_and_none_is_claimed(database_url: str) -> None:
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    runtime = interaction.app.create_app(settings, InProcessTransport()).state.runtime
    [consumer] = [c for c in runtime.consumers if c.group_id.endswith("segments")]
    rng = random.Random(11)
    stream = _stream(rng, [uuid.uuid4() for _ in range(4)], ["rule:vip", "rule:eu", "rfm:champions"])
    try:
        shuffled = rng.sample(stream, len(stream))  # they arrive out of order
        for i in range(0, len(shuffled), 7):
            await consumer.process(_messages(shuffled[i : i + 7], i))
        async with runtime.session_factory() as session:
            once = await _copy(session)
        newest: dict[tuple, SegmentMembershipChanged] = {}
        for c in stream:
            newest[(c.customer_id, c.segment_key)] = c  # the stream is in time order
        assert once == sorted((k[0], k[1], c.change == "entered", c.changed_at) for k, c in newest.items())

        # Redelivered: everything again, shuffled, in other batches (a consumer restarted, a relay re-sent).
        again = rng.sample(stream, len(stream))
        for i in range(0, len(again), 5):
            await consumer.process(_messages(again[i : i + 5], len(stream) + i))
        async with runtime.session_factory() as session:
            assert await _copy(session) == once
            claimed = (await session.execute(sa.text("SELECT count(*) FROM interaction.inbox"))).scalar()
        assert claimed == 0, "the membership copy's events are not claimed"
    finally:
        await runtime.engine.dispose()
