"""Every copy of another service's facts ends equal to the owner's state, whatever the delivery.

The owner produces its events for real (lifecycle re-deriving stages from late, duplicate and out-of-order
facts; clv scoring in runs and incrementally); the events it published are then delivered to each copy late,
twice and shuffled, in random batches, through the copy's own handler. The copy must equal the owner's final
state, version included (the handbook rule: a copy follows the owner's order, never business time).
"""

import random
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa

from shared.contracts.clv import CustomerValueUpdated
from shared.contracts.envelope import Envelope
from shared.contracts.interaction import CustomerMerged, CustomerUnmerged, CustomerUpdated
from shared.contracts.lifecycle import StageChanged, StageCleared
from shared.contracts.segmentation import SegmentMembershipChanged
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.inprocess import InProcessTransport
from tests.services.clv.support import clv_service, simulated_purchases
from tests.services.clv.support import purchase as clv_purchase
from tests.services.conftest import serving
from tests.services.interaction.conftest import customer_of, trust
from tests.services.interaction.events import identified
from tests.services.lifecycle import conftest as lifecycle_conftest
from tests.services.lifecycle.conftest import cancellation, days_ago
from tests.services.lifecycle.conftest import purchase as lifecycle_purchase
from tests.services.lifecycle.test_stages import random_history
from tests.services.segmentation.helpers import Feeder, outbox_rows
from tests.services.segmentation.helpers import merged as segmentation_merged
from tests.services.segmentation.helpers import purchase as segmentation_purchase
from tests.services.segmentation.helpers import refund as segmentation_refund
from tests.services.segmentation.helpers import unmerged as segmentation_unmerged
from tests.support import scalar, wait_until

from clv.propositions.projection import apply_targeting_events
from clv.transaction_summary.projection import apply_interaction_events
from interaction.app import create_app as create_interaction
from interaction.customers.published import publishable_attributes
from interaction.segment_copy.projection import apply as apply_to_interaction
from interaction.settings import InteractionSettings
from segmentation.app import create_app as create_segmentation
from segmentation.rules import service as rules_service
from segmentation.rules.service import preview as rules_preview
from segmentation.settings import SegmentationSettings

# The lifecycle app fixture, for a test outside its folder.
lc = lifecycle_conftest.lc


def shuffled_deliveries(rng: random.Random, events: list, batches: int = 5) -> list[list]:
    """Every event at least once, a third of them twice, in random order, cut into random batches."""
    arrivals = events + rng.sample(events, len(events) // 3)
    rng.shuffle(arrivals)
    cut = sorted(rng.sample(range(1, len(arrivals)), min(batches - 1, len(arrivals) - 1)))
    return [arrivals[i:j] for i, j in zip([0, *cut], [*cut, len(arrivals)], strict=True)]


async def published(session_factory, schema: str, *models) -> list:
    """(envelope, payload) of every event of these types the service published, in outbox order."""
    by_type = {m.EVENT_TYPE: m for m in models}
    async with session_factory() as session:
        rows = (await session.execute(sa.text(f"SELECT payload FROM {schema}.outbox ORDER BY id"))).scalars().all()
    envelopes = [Envelope.model_validate(orjson.loads(r)) for r in rows]
    return [(e, by_type[e.type].model_validate(e.data)) for e in envelopes if e.type in by_type]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_stage_copies_equal_lifecycle(lc, database_url, seed):
    rng = random.Random(seed)
    customers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(15)]
    facts = [e for c in customers for e in random_history(rng, c)]
    # And one customer whose only purchase is cancelled after it gave a stage: lifecycle then holds none.
    left, order = uuid.UUID(int=rng.getrandbits(128)), uuid.uuid4()
    await lc.apply([lifecycle_purchase(left, days_ago(30), order)])
    facts.append(cancellation(left, days_ago(29), order))
    for batch in shuffled_deliveries(rng, facts):
        await lc.apply(batch)
    events = await published(lc.runtime.session_factory, "lifecycle", StageChanged)
    cleared = await published(lc.runtime.session_factory, "lifecycle", StageCleared)
    assert any(p.version is not None for _, p in events)
    assert left in {p.customer_id for _, p in cleared}
    events += cleared

    feeder = Feeder(database_url)
    engine = make_engine(database_url, pool_size=2)
    clv_sessions = make_session_factory(engine)
    try:
        for batch in shuffled_deliveries(rng, events, batches=6):
            await feeder.apply([p for _, p in batch])
            async with clv_sessions.begin() as session:
                await apply_targeting_events(session, [ConsumedEvent(e, p, None) for e, p in batch])  # type: ignore[arg-type]
        owner = {
            r.customer_id: (r.stage, r.version)
            for r in await lc.sql("SELECT customer_id, stage, version FROM lifecycle.customer_stage")
        }
        assert owner
        segmentation = {
            r.customer_id: (r.stage, r.stage_version)
            for r in await lc.sql(
                "SELECT customer_id, stage, stage_version FROM segmentation.customer_aggregate WHERE stage IS NOT NULL"
            )
        }
        clv_copy = {
            r.customer_id: (r.stage, r.version)
            for r in await lc.sql("SELECT customer_id, stage, version FROM clv.customer_stage WHERE stage IS NOT NULL")
        }
        # A customer whose facts no longer give any stage (every purchase cancelled) has no owner row: its copies
        # hold none either (stage.cleared).
        assert left not in owner
        assert segmentation == owner
        assert clv_copy == owner
    finally:
        await feeder.close()
        await engine.dispose()


async def test_value_copy_equals_clv(database_url):
    rng = random.Random(7)
    now = datetime.now(UTC)
    history = simulated_purchases(150, now - timedelta(days=1), seed=11)
    async with clv_service(database_url) as svc:
        engine = svc.app.state.runtime.engine
        await svc.publish(history)
        await wait_until(lambda: _count(engine, "clv.purchase", len(history)), message="purchases applied")
        fit = await svc.client.post("/v1/value/models/fits", json={"model": "bgnbd", "currency": "EUR"})
        fit = await svc.poll(f"/v1/value/models/fits/{fit.json()['id']}")
        for margin in (1.0, 0.3):  # two runs: the second changes every value materially
            run = await svc.client.post("/v1/value/scorings", json={"currency": "EUR", "fit_id": fit["id"], "margin": margin})
            assert (await svc.poll(f"/v1/value/scorings/{run.json()['id']}"))["status"] == "succeeded"
            # Then new purchases, scored incrementally (values published between and after the runs).
            buyers = rng.sample(sorted({p.customer_id for p in history}), 20) + [uuid.uuid4() for _ in range(5)]
            more = [clv_purchase(c, str(rng.randint(5, 500)), now - timedelta(hours=rng.randint(1, 20))) for c in buyers]
            total = await scalar(engine, "select count(*) from clv.purchase") + len(more)
            await svc.publish(more)
            await wait_until(lambda total=total: _count(engine, "clv.purchase", total), message="new purchases applied")
            history += more
        events = await published(svc.app.state.runtime.session_factory, "clv", CustomerValueUpdated)
        async with svc.app.state.runtime.session_factory() as session:
            owner = {
                r.customer_id: (r.clv, r.tier, r.version)
                for r in await session.execute(sa.text("SELECT customer_id, clv, tier, version FROM clv.customer_value"))
            }
    assert len(events) > len(owner), "customers were valued more than once"

    feeder = Feeder(database_url)
    try:
        for batch in shuffled_deliveries(rng, events, batches=8):
            await feeder.apply([p for _, p in batch])
        async with feeder.sessions() as session:
            copy = {
                r.customer_id: (r.clv, r.value_tier, r.value_version)
                for r in await session.execute(
                    sa.text(
                        "SELECT customer_id, clv, value_tier, value_version FROM segmentation.customer_aggregate "
                        "WHERE clv IS NOT NULL"
                    )
                )
            }
    finally:
        await feeder.close()
    # The owner's stored value may move a little without an event (under the materiality threshold): the copy
    # holds the last published one, the version says which.
    assert {c: (v[1], v[2]) for c, v in copy.items()} == {c: (v[1], v[2]) for c, v in owner.items()}


async def _count(engine, table: str, expected: int) -> bool:
    return await scalar(engine, f"select count(*) from {table}") == expected


async def test_clv_keeps_the_stage_lifecycle_gave_a_restored_customer_whatever_the_merge_arrives_after(database_url):
    """Lifecycle drops a merged-away customer's stage, and gives it one again (a greater version) when an unmerge
    restores it. clv reads those stages (lifecycle's topic) and the merges (interaction's topic) with two
    consumers, so the restored customer's new stage may be applied before the merge and its undo. The merge's
    fold deleted the customer's stage row then, and clv held none while lifecycle held retention (the proving
    ground, seed 1206). The copy follows the owner's versions only: the row stays with the id lifecycle names."""
    x, z = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)

    def stage(to: str, version: int) -> ConsumedEvent:
        p = StageChanged(customer_id=x, from_stage=None, to_stage=to, changed_at=now, reason="rules", version=version)
        return ConsumedEvent(Envelope.wrap(p, source="/services/lifecycle", subject=str(x)), p, None)  # type: ignore[arg-type]

    merge_id = uuid.uuid4()
    merge = CustomerMerged(
        customer_id=z, merge_id=merge_id, survivor_id=z, merged_id=x, reason="same e-mail", merged_at=now, version=1
    )
    undo = CustomerUnmerged(customer_id=z, merge_id=merge_id, survivor_id=z, restored_id=x, unmerged_at=now, version=2)
    engine = make_engine(database_url, pool_size=4)
    sessions = make_session_factory(engine)
    try:
        async with sessions.begin() as session:  # the targeting consumer is ahead: both stages, the later restored
            await apply_targeting_events(session, [stage("development", 3), stage("retention", 9)])
        for p in (merge, undo):  # the interaction consumer behind: the merge, then its undo
            async with sessions.begin() as session:
                await apply_interaction_events(
                    session,
                    [ConsumedEvent(Envelope.wrap(p, source="/services/interaction", subject=str(z)), p, None)],  # type: ignore[arg-type]
                )
        assert (await scalar(engine, "SELECT stage || ' ' || version FROM clv.customer_stage WHERE customer_id = :c", c=x)) == (
            "retention 9"
        )
    finally:
        await engine.dispose()


async def test_segmentation_keeps_the_stage_lifecycle_gave_a_restored_customer_and_counts_no_merged_away_id(database_url):
    """The same race in segmentation (its stage copy and its merges come through two consumers): the merge's fold
    deleted the merged-away id's row, copies included, so the stage lifecycle gave the restored customer before
    the fold arrived was lost. The fold now keeps the copies; a rule segment never counts a merged-away id."""
    x, y, z = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)

    def stage(cid: uuid.UUID, to: str, version: int) -> StageChanged:
        return StageChanged(customer_id=cid, from_stage=None, to_stage=to, changed_at=now, reason="rules", version=version)

    def merge(merged: uuid.UUID, version: int) -> CustomerMerged:
        return CustomerMerged(
            customer_id=z, merge_id=uuid.uuid4(), survivor_id=z, merged_id=merged, reason="r", merged_at=now, version=version
        )

    merge_x = merge(x, 1)
    undo = CustomerUnmerged(customer_id=z, merge_id=merge_x.merge_id, survivor_id=z, restored_id=x, unmerged_at=now, version=2)
    feeder = Feeder(database_url)
    try:
        await feeder.apply(
            [stage(x, "development", 3), stage(x, "retention", 9), stage(y, "retention", 10), stage(z, "development", 11)]
        )
        for p in (merge_x, undo, merge(y, 3)):  # the interaction consumer behind
            await feeder.apply([p])
        async with feeder.sessions() as session:
            restored = (
                await session.execute(
                    sa.text("SELECT stage, stage_version FROM segmentation.customer_aggregate WHERE customer_id = :c"), {"c": x}
                )
            ).one()
            # A fresh database: x (restored) and y (merged into z, its copy kept) hold that stage, z its own.
            count, sample = await rules_preview(session, {"field": "stage", "op": "eq", "value": "retention"}, "EUR")
        assert tuple(restored) == ("retention", 9)
        assert (count, sample) == (1, [x])
    finally:
        await feeder.close()


def kafka_deliveries(rng: random.Random, keyed: list[tuple[str, object]], batches: int = 8) -> list[list]:
    """What a consumer of one topic sees: each key's events in the order published, the keys interleaved at
    random, and a third of the keys replayed from an earlier offset (a consumer restarted before it committed),
    cut into random batches."""
    streams: dict[str, list] = {}
    for key, event in keyed:
        streams.setdefault(key, []).append(event)
    for key in rng.sample(sorted(streams), len(streams) // 3):
        s = streams[key]
        upto = rng.randint(1, len(s))
        streams[key] = s[:upto] + s[rng.randint(0, upto - 1) :]
    arrivals: list = []
    cursors = {key: 0 for key in streams}
    while cursors:
        key = rng.choice(sorted(cursors))
        arrivals.append(streams[key][cursors[key]])
        cursors[key] += 1
        if cursors[key] == len(streams[key]):
            del cursors[key]
    cut = sorted(rng.sample(range(1, len(arrivals)), min(batches - 1, len(arrivals) - 1)))
    return [arrivals[i:j] for i, j in zip([0, *cut], [*cut, len(arrivals)], strict=True)]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_attribute_copy_equals_interaction_through_merges_and_unmerges(database_url, seed):
    """Interaction's profiles change by partner events (late ones too), automatic merges (a shared e-mail),
    merges by hand and their undo; segmentation's copy of the attributes, fed interaction's events as Kafka
    would deliver them (per key in order, keys interleaved, replays), ends equal to interaction's profiles.
    Merged in arrival order, the update of a merged-away id that arrives after its merge overrode the
    survivor's value, and an unmerge never took back the attributes the merge had filled."""
    rng = random.Random(seed)
    subjects = [f"S-{i}" for i in range(10)]
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    keys = ["tier", "segment", "visits", "vip"]
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    engine = make_engine(database_url, pool_size=2)
    async with serving(create_interaction(settings)) as client:
        await trust(client, "shop-eu")
        merge_ids: list[str] = []
        for step in range(70):
            roll = rng.random()
            if roll < 0.75 or step < 10:
                events = []
                for _ in range(rng.randint(1, 3)):
                    attributes = {k: rng.choice(["gold", "silver", 3, True, None]) for k in rng.sample(keys, rng.randint(1, 2))}
                    email = rng.choice(emails) if rng.random() < 0.15 else None
                    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randint(0, 2000))  # late ones too
                    events.append(identified(rng.choice(subjects), email=email, attributes=attributes, time=at.isoformat()))
                assert (await client.post("/v1/events", json=events)).status_code == 200
            elif roll < 0.9:
                known = [str(c) for c in [await customer_of(engine, s) for s in rng.sample(subjects, 2)] if c]
                if len(known) == 2:
                    resp = await client.post("/v1/merges", json={"customer_ids": known, "reason": "same person"})
                    assert resp.status_code in (201, 409), resp.text
                    if resp.status_code == 201:
                        merge_ids.append(resp.json()["id"])
            elif merge_ids:
                resp = await client.post(f"/v1/merges/{merge_ids.pop(rng.randrange(len(merge_ids)))}/undo")
                assert resp.status_code in (200, 404, 409), resp.text
        events = await published(make_session_factory(engine), "interaction", CustomerUpdated, CustomerMerged, CustomerUnmerged)
        async with engine.connect() as conn:
            live = set((await conn.execute(sa.text("SELECT id FROM interaction.customer WHERE merged_into IS NULL"))).scalars())
            owner = {c: {} for c in live} | {
                r.customer_id: publishable_attributes(orjson.loads(r.attributes))
                for r in await conn.execute(
                    sa.text(
                        "SELECT customer_id, CAST(jsonb_object_agg(key, value) AS text) AS attributes "
                        "FROM interaction.customer_property WHERE kind = 'attribute' GROUP BY customer_id"
                    )
                )
                if r.customer_id in live
            }
    await engine.dispose()
    keyed = [(e.subject, p) for e, p in events]
    assert any(isinstance(p, CustomerMerged) for _, p in keyed) and any(isinstance(p, CustomerUnmerged) for _, p in keyed)

    feeder = Feeder(database_url)
    try:
        for batch in kafka_deliveries(rng, keyed):
            await feeder.apply(batch)
        async with feeder.sessions() as session:
            stored = {
                r.customer_id: r.attributes
                for r in await session.execute(
                    sa.text("SELECT customer_id, attributes FROM segmentation.customer_aggregate WHERE customer_id = ANY(:ids)"),
                    {"ids": list(live)},
                )
            }
    finally:
        await feeder.close()
    assert {c: stored.get(c, {}) for c in live} == owner


class TwoReplicaClock(datetime):
    """`datetime.now` of two segmentation replicas taking turns, the second's clock 5 s behind the first's: a
    replica's decision time may be older than a change another replica committed before it."""

    calls = 0

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        cls.calls += 1
        return datetime.now(tz) - timedelta(seconds=5 * (cls.calls % 2))


@pytest.mark.parametrize("seed", [1, 2])
async def test_membership_copies_equal_segmentation(database_url, monkeypatch, seed):
    """Segmentation moves customers in and out of rule segments (refreshes on two replicas with skewed clocks,
    so a later change may carry an older `changed_at`) and of RFM segments (runs: their events are the numpy
    path's templated rows), and ends a merged-away customer's memberships (its unmerge restores it). Its events
    then reach interaction's and clv's copies late, twice and shuffled. Each copy must hold, per customer and
    segment, segmentation's membership with the version of its last change: newest `changed_at` wins (the copies'
    rule before) fails on the skewed refreshes, and a merge that ends memberships without a word (as before)
    leaves the copies holding them."""
    monkeypatch.setattr(rules_service, "datetime", TwoReplicaClock)
    rng = random.Random(seed)
    customers = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(12)]
    settings = SegmentationSettings(database_url=database_url, transport="inprocess", run_workers=False)
    app = create_segmentation(settings, InProcessTransport())
    feeder = Feeder(database_url)
    engine = make_engine(database_url, pool_size=2)
    sessions = make_session_factory(engine)
    try:
        async with serving(app) as client:
            for key, spend in (("big", 100), ("bigger", 300)):
                rule = {"key": key, "name": key, "rule": {"field": "spend", "op": "gte", "value": spend}}
                assert (await client.post("/v1/segments", json=rule)).status_code == 201

            async def rfm_run() -> None:
                body = {"kind": "rfm", "as_of": "2026-12-31T00:00:00Z"}
                assert (await client.post("/v1/segmentation/runs", json=body)).status_code == 202
                await app.state.run_executor.wait_idle()

            bought: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {c: [] for c in customers}
            ever_bought: list[uuid.UUID] = []  # customers[0]'s purchases: its unmerge gives them back
            merge_id = uuid.uuid4()
            for round_ in range(10):
                batch: list = []
                if round_ == 5:  # customers[0] merged into customers[1]: its memberships end (published)
                    batch.append(segmentation_merged(customers[1], customers[0], merge_id))
                if round_ == 7:  # and restored
                    batch.append(segmentation_unmerged(customers[1], customers[0], ever_bought, [], merge_id))
                merged_away = 5 <= round_ < 7
                picks = [customers[0]] * (round_ < 5) + rng.sample(customers[1:], 5)
                for c in picks if not merged_away else picks[1:]:
                    if bought[c] and rng.random() < 0.4:  # a purchase cancelled: the spend drops, maybe below a rule
                        purchase_id, amount = bought[c].pop(rng.randrange(len(bought[c])))
                        batch.append(segmentation_refund(c, purchase_id, amount, cancelled=True, days=round_ + 1))
                    else:
                        amount = str(rng.choice([60, 120, 250]))
                        batch.append(segmentation_purchase(c, f"{amount}.00", days=round_))
                        bought[c].append((batch[-1].purchase_id, f"{amount}.00"))
                        if c == customers[0]:
                            ever_bought.append(batch[-1].purchase_id)
                await feeder.apply(batch)  # each apply refreshes the touched customers' rules: one replica's turn
                if round_ in (3, 9):
                    await rfm_run()

        events = [Envelope.from_json(payload) for _, payload in await outbox_rows(feeder.engine)]
        changes = [e.payload(SegmentMembershipChanged) for e in events if e.type == SegmentMembershipChanged.EVENT_TYPE]
        assert {c.kind for c in changes} == {"rule", "rfm"} and {c.change for c in changes} == {"entered", "left"}
        assert all(c.version is not None for c in changes)
        # The merge ended customers[0]'s RFM membership (from the first run) and said so: a run-less RFM exit.
        assert any(c.customer_id == customers[0] and c.kind == "rfm" and c.run_id is None for c in changes)
        last: dict[tuple, SegmentMembershipChanged] = {}
        for c in changes:
            k = (c.customer_id, c.segment_key)
            if k not in last or c.version > last[k].version:
                last[k] = c
        # The case the skewed clocks make: the last change of a membership is not its newest changed_at.
        assert any(
            c.changed_at < max(o.changed_at for o in changes if (o.customer_id, o.segment_key) == k) for k, c in last.items()
        )

        delivered = [
            ConsumedEvent(e, e.payload(SegmentMembershipChanged), None)  # type: ignore[arg-type]
            for e in events
            if e.type == SegmentMembershipChanged.EVENT_TYPE
        ]
        for batch in shuffled_deliveries(rng, delivered, batches=7):
            async with sessions.begin() as session:
                await apply_to_interaction(session, batch)
            async with sessions.begin() as session:
                await apply_targeting_events(session, batch)

        async with sessions() as session:
            open_now = {
                (r.customer_id, r.key)
                for r in await session.execute(
                    sa.text(
                        "SELECT m.customer_id, s.key FROM segmentation.segment_membership m "
                        "JOIN segmentation.segment s USING (segment_id) WHERE m.left_at IS NULL"
                    )
                )
            }
            copies = {
                schema: {
                    (r.customer_id, r.segment_key): (r.member, r.version)
                    for r in await session.execute(
                        sa.text(f"SELECT customer_id, segment_key, member, version FROM {schema}.segment_membership")
                    )
                }
                for schema in ("interaction", "clv")
            }
        assert open_now and open_now <= last.keys()
        expected = {k: (k in open_now, c.version) for k, c in last.items()}
        assert copies["interaction"] == expected
        assert copies["clv"] == expected
    finally:
        await feeder.close()
        await engine.dispose()
