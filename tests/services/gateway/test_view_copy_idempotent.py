"""The view copy's handler is idempotent, so its events are not claimed in the inbox (`Subscription.idempotent`):
the domain events applied again, out of order, leave the copy as it was; the webhooks, applied by the same consumer,
are still claimed and delivered once."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from shared.contracts import clv, interaction, lifecycle
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CLV_EVENTS, INTERACTION_EVENTS, LIFECYCLE_EVENTS
from shared.messaging.inprocess import InProcessTransport
from shared.messaging.transport import IncomingMessage

import gateway.app
from gateway.settings import GatewaySettings


def _stream(customers: list[uuid.UUID]) -> list[tuple[str, Envelope]]:
    """Stages and values (two versions each) of every customer, a merge of the second into the first, and the
    erasure of the last."""
    now = datetime.now(UTC).replace(microsecond=0)
    out: list[tuple[str, Envelope]] = []
    for i, cid in enumerate(customers):
        for version, stage in ((1, "acquisition"), (2, "development")):
            changed = lifecycle.StageChanged(
                customer_id=cid, from_stage=None, to_stage=stage, changed_at=now - timedelta(days=i), reason="r", version=version
            )
            value = clv.CustomerValueUpdated(
                customer_id=cid,
                currency="EUR",
                historical_value=Decimal(10 * version),
                current_value=Decimal(20 * version),
                potential_value=Decimal(5),
                clv=Decimal(25 * version),
                probability_alive=0.9,
                expected_purchases=1.5,
                tier="bronze",
                as_of=now,
                version=version,
            )
            out.append((LIFECYCLE_EVENTS, Envelope.wrap(changed, source=lifecycle.SOURCE, subject=str(cid))))
            out.append((CLV_EVENTS, Envelope.wrap(value, source=clv.SOURCE, subject=str(cid))))
    survivor, merged, erased = customers[0], customers[1], customers[-1]
    merge = interaction.CustomerMerged(
        customer_id=survivor,
        merge_id=uuid.uuid4(),
        survivor_id=survivor,
        merged_id=merged,
        reason="same e-mail",
        merged_at=now,
        version=1,
    )
    out.append((INTERACTION_EVENTS, Envelope.wrap(merge, source=interaction.SOURCE, subject=str(survivor))))
    erasure = interaction.CustomerErased(customer_id=erased, erased_at=now)
    out.append((INTERACTION_EVENTS, Envelope.wrap(erasure, source=interaction.SOURCE, subject=str(erased))))
    return out


def _messages(events: list[tuple[str, Envelope]]) -> list[IncomingMessage]:
    return [IncomingMessage(topic, 0, offset, e.subject.encode(), e.to_json(), []) for offset, (topic, e) in enumerate(events)]


async def _copy(session) -> dict:
    rows = await session.execute(
        sa.text("SELECT customer_id, survivor_id, lifecycle_version, value_version FROM gateway.customer_view_copy")
    )
    erased = await session.execute(sa.text("SELECT customer_id FROM gateway.erased_customer"))
    return {"rows": sorted(tuple(r) for r in rows), "erased": sorted(erased.scalars())}


async def test_the_copy_is_the_same_after_its_events_come_again_and_only_the_webhooks_are_claimed(database_url: str) -> None:
    settings = GatewaySettings(database_url=database_url, transport="inprocess", run_workers=False)
    runtime = gateway.app.create_app(settings, InProcessTransport()).state.runtime
    [consumer] = [c for c in runtime.consumers if c.group_id.endswith("domain-events")]
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO gateway.webhook_subscription (id, url, event_types, secret) "
                "VALUES (:id, 'https://hooks.example.com/crm', ARRAY['stage.changed'], 's')"
            ),
            {"id": uuid.uuid4()},
        )
    customers = [uuid.uuid4() for _ in range(4)]
    stream = _stream(customers)
    try:
        for i in range(0, len(stream), 5):
            await consumer.process(_messages(stream[i : i + 5]))
        async with runtime.session_factory() as session:
            once = await _copy(session)
            delivered = (await session.execute(sa.text("SELECT count(*) FROM gateway.webhook_delivery"))).scalar()
        assert str(customers[-1]) in once["erased"] and customers[-1] not in [r[0] for r in once["rows"]]
        assert {r[0]: r[2:] for r in once["rows"]}[customers[0]] == (2, 2), "the greater versions"

        # Redelivered: everything again, shuffled, in other batches (a consumer restarted, a relay re-sent).
        again = list(stream)
        random.Random(7).shuffle(again)
        for i in range(0, len(again), 3):
            await consumer.process(_messages(again[i : i + 3]))
        async with runtime.session_factory() as session:
            assert await _copy(session) == once
            assert (await session.execute(sa.text("SELECT count(*) FROM gateway.webhook_delivery"))).scalar() == delivered
            claimed = dict(
                (await session.execute(sa.text("SELECT consumer, count(*) FROM gateway.inbox GROUP BY consumer"))).all()
            )
        assert claimed == {"gateway.webhooks": len(stream)}, "the view copy's events are not claimed"
    finally:
        await runtime.engine.dispose()
