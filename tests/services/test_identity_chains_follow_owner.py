"""Copies of interaction's purchases follow its merges and unmerges whatever order the events arrive in.

Interaction produces the events for real (its HTTP door and merge routes): customers merged in a chain
(B into A, then A into C), orders placed through a merged-away customer's identifier, a refund, a merge undone
while its survivor was itself merged away, and a merge undone and replaced by another survivor. On a topic
with several partitions the events arrive in any order (merges keyed by survivor, facts by their customer of
the moment), so they are delivered to each copy's own handler in reverse and shuffled, twice some of them.
Every copy (segmentation, clv, lifecycle and lifecycle's campaign copy) must then name interaction's survivor
for every id and hold each live customer's order count and net spend as interaction does. Found by the
proving ground (issue 12).

clv's profitability is a second consumer of the same topic in clv (its own group, so its own arrival order)
sharing clv's record of merges with the transaction summary: it gets its own shuffle, and its orders, net
revenue and touchpoints (two logged through merged-away identifiers) must be with interaction's customer too.
Segmentation's rule-field facts (channel/partner of purchases and touchpoints, feedback scores, a lead's
campaign, occurrences of a custom event type) must sit with the customer interaction holds each of them with.
"""

import random
import uuid

import orjson
import pytest
import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.identity import chain_members_sql, live_sql
from shared.contracts.interaction import INTERACTION_EVENT_TYPES
from shared.db import make_engine
from shared.messaging.inbox import ConsumedEvent
from tests.services.conftest import serving
from tests.services.interaction.events import event, feedback, order, refund, touch
from tests.services.lifecycle import conftest as lifecycle_conftest
from tests.services.segmentation.helpers import Feeder
from tests.services.test_copies_follow_owners import shuffled_deliveries

from clv.profitability.projection import apply_events as profit_apply
from clv.profitability.repository import CUSTOMER_PROFIT
from clv.transaction_summary.projection import apply_interaction_events as clv_apply
from interaction.app import create_app
from interaction.settings import InteractionSettings

# The lifecycle app fixture, for a test outside its folder.
lc = lifecycle_conftest.lc


@pytest.fixture
async def interaction(database_url):
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    async with serving(create_app(settings)) as client:
        yield client


async def _ok(resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


async def _customer(engine, subject: str) -> uuid.UUID:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "select home_customer_id from interaction.customer_identifier "
                    "where kind = 'source' and source = 'shop-eu' and external_id = :e"
                ),
                {"e": subject},
            )
        ).scalar()


async def owner_history(client, engine, tag: str) -> tuple[list[Envelope], list[uuid.UUID]]:
    """Drives interaction through merge chains and undos; returns the events it published and its customers."""
    async with engine.connect() as conn:
        start = (await conn.execute(sa.text("select coalesce(max(id), 0) from interaction.outbox"))).scalar()
    subject = {k: f"{k}-{tag}" for k in "CABFDE"}
    # A custom event type, so that its occurrences (segmentation's event_count / event_last_at) take part.
    await _ok(
        await client.post(
            "/v1/event-types",
            json={"name": "order.shipped", "schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}},
        ),
        201,
    )
    # First seen in this order: the older customer survives a merge by hand.
    for i, k in enumerate("CABFDE"):
        await _ok(
            await client.post(
                "/v1/events", json=[order(subject[k], f"{k}1-{tag}", f"{10 * (i + 1)}.00", at=f"2026-0{i + 1}-01T00:00:00Z")]
            )
        )
    c, a, b, f, d, e = [await _customer(engine, subject[k]) for k in "CABFDE"]

    async def merge(x: uuid.UUID, y: uuid.UUID) -> str:
        return (await _ok(await client.post("/v1/merges", json={"customer_ids": [str(x), str(y)]}), 201))["id"]

    m_ab = await merge(a, b)  # B into A
    await _ok(
        await client.post(
            "/v1/events",
            json=[  # through B's identifier: A's purchase now, home B
                order(subject["B"], f"B2-{tag}", "7.00", at="2026-07-01T00:00:00Z"),
                refund(subject["B"], f"B1-{tag}", "5.00", at="2026-07-02T00:00:00Z"),
                # Facts the rule fields read, also through B's identifier: they go back to B with the undo below.
                touch(subject["B"], "phone", at="2026-07-02T01:00:00Z"),
                feedback(subject["B"], nps=3, at="2026-07-02T02:00:00Z"),
                event(
                    "lead.captured",
                    subject["B"],
                    {"campaign": f"camp-B-{tag}", "lead_source": "webinar", "occurred_at": "2026-07-02T03:00:00Z"},
                ),
                event("order.shipped", subject["B"], {"order_id": f"B2-{tag}"}, time="2026-07-02T04:00:00Z"),
            ],
        )
    )
    await merge(c, a)  # A (with B) into C
    await _ok(
        await client.post(
            "/v1/events",
            json=[
                order(subject["A"], f"A2-{tag}", "3.00", at="2026-07-03T00:00:00Z"),
                feedback(subject["A"], csat=4, at="2026-07-03T01:00:00Z"),
                event("lead.captured", subject["A"], {"campaign": f"camp-A-{tag}", "occurred_at": "2026-07-03T02:00:00Z"}),
                touch(subject["A"], "email", at="2026-07-03T03:00:00Z"),
                event("order.shipped", subject["A"], {"order_id": f"A2-{tag}"}, time="2026-07-03T04:00:00Z"),
            ],
        )
    )
    undo = await _ok(await client.post(f"/v1/merges/{m_ab}/undo"))  # B comes back out of C
    assert len(undo["purchase_ids"]) == 2
    m_de = await merge(d, e)  # E into D, undone, then E into F: two survivors of E in turn
    await _ok(await client.post(f"/v1/merges/{m_de}/undo"))
    await merge(f, e)
    async with engine.connect() as conn:
        rows = (
            (await conn.execute(sa.text("select payload from interaction.outbox where id > :s order by id"), {"s": start}))
            .scalars()
            .all()
        )
    return [Envelope.model_validate(orjson.loads(r)) for r in rows], [c, a, b, f, d, e]


async def owner_state(engine, customers: list[uuid.UUID]) -> tuple[dict, dict]:
    """Interaction's survivor of each id, and each live customer's (order count, net spend) per currency."""
    async with engine.connect() as conn:
        survivors = {}
        for cid in customers:
            survivors[cid] = (
                await conn.execute(
                    sa.text("""
                WITH RECURSIVE chain(id, merged_into) AS (
                    SELECT id, merged_into FROM interaction.customer WHERE id = :id
                    UNION ALL SELECT c.id, c.merged_into FROM interaction.customer c JOIN chain ON c.id = chain.merged_into)
                SELECT id FROM chain WHERE merged_into IS NULL"""),
                    {"id": cid},
                )
            ).scalar()
        spend = {
            (r.customer_id, r.currency): (r.purchase_count, r.total_spend)
            for r in await conn.execute(
                sa.text(
                    "select customer_id, currency, purchase_count, total_spend from interaction.customer_spend "
                    "where customer_id = any(:ids)"
                ),
                {"ids": customers},
            )
        }
    return survivors, spend


async def copy_state(engine, customers: list[uuid.UUID], summary: str, count: str, spend: str, alias: str) -> tuple[dict, dict]:
    async with engine.connect() as conn:
        aliases = {
            r[0]: r[1]
            for r in await conn.execute(
                sa.text(f"select merged_id, survivor_id from {alias} where merged_id = any(:ids)"), {"ids": customers}
            )
        }
        totals = {
            (r[0], r[1]): (r[2], r[3])
            for r in await conn.execute(
                sa.text(
                    f"select customer_id, currency, {count}, {spend} from {summary} where customer_id = any(:ids) and {count} > 0"
                ),
                {"ids": customers},
            )
        }
    return {cid: aliases.get(cid, cid) for cid in customers}, totals


async def owner_touchpoints(engine, events: list[Envelope]) -> dict:
    """Each touchpoint's customer in interaction (its timeline row, moved by merges and unmerges)."""
    ids = [uuid.UUID(e.data["touchpoint_id"]) for e in events if e.type == "touchpoint.recorded"]
    async with engine.connect() as conn:
        return {
            r[0]: r[1]
            for r in await conn.execute(
                sa.text("select id, customer_id from interaction.activity where id = any(:ids)"), {"ids": ids}
            )
        }


async def profit_state(engine, customers: list[uuid.UUID], touchpoints: list[uuid.UUID]) -> tuple[dict, dict, dict]:
    """Profitability's live customer of each id (its own read), each customer's (orders, net revenue) per
    currency, and each touchpoint's customer."""
    async with engine.connect() as conn:
        lives = {r.id: r.live for r in await conn.execute(sa.text(live_sql("clv.customer_merge")), {"ids": customers})}
        totals = {
            (r.customer_id, r.currency): (r.orders, r.net_revenue)
            for r in await conn.execute(
                sa.text(CUSTOMER_PROFIT.format(orders_of="AND o.customer_id = ANY(CAST(:ids AS uuid[]))")),
                {"ids": customers, "fallback_rate": 0.7},
            )
        }
        placed = {
            r[0]: r[1]
            for r in await conn.execute(
                sa.text("select touchpoint_id, customer_id from clv.profit_touchpoint where touchpoint_id = any(:ids)"),
                {"ids": touchpoints},
            )
        }
    return {cid: lives.get(cid, cid) for cid in customers}, totals, placed


# Each live customer's orders and net spend as the campaign report sees them (lifecycle/campaigns/repository.py).
CAMPAIGN_PURCHASES = """(select coalesce(m.survivor_id, p.home_customer_id) as customer_id, p.currency,
    count(*) as orders, sum(p.amount - coalesce(r.refunded, 0)) as net
  from lifecycle.campaign_purchase p
  left join lifecycle.merged_customer m on m.merged_id = p.home_customer_id
  left join (select purchase_id, sum(amount) as refunded from lifecycle.campaign_refund group by purchase_id) r
         on r.purchase_id = p.purchase_id
  group by 1, 2) cp"""


async def fact_divergences(engine, customers: list[uuid.UUID]) -> list[str]:
    """Segmentation's rule-field facts against interaction: who holds each purchase's and touchpoint's channel
    and partner, each feedback's score, each lead's campaign."""
    async with engine.connect() as conn:

        async def pairs(sql: str) -> dict:
            return {r[0]: r[1] for r in await conn.execute(sa.text(sql), {"ids": customers})}

        owner = await pairs("""
            SELECT id, customer_id FROM interaction.purchase WHERE home_customer_id = any(:ids)
            UNION ALL SELECT id, customer_id FROM interaction.activity
            WHERE home_customer_id = any(:ids) AND type IN ('interaction.logged', 'feedback.submitted')""")
        owner_feedback = await pairs("""SELECT id, customer_id FROM interaction.activity
            WHERE home_customer_id = any(:ids) AND type = 'feedback.submitted'""")
        owner_leads = await pairs("""SELECT data->>'campaign', customer_id FROM interaction.activity
            WHERE home_customer_id = any(:ids) AND type = 'lead.captured'""")
        copy = await pairs("""SELECT origin_id, customer_id FROM segmentation.customer_fact f
            WHERE home_customer_id = any(:ids) AND kind = 'partner' AND NOT EXISTS (
                SELECT 1 FROM segmentation.customer_fact l WHERE l.origin_id = f.origin_id AND l.kind = 'campaign')""")
        copy_feedback = await pairs(
            "SELECT feedback_id, customer_id FROM segmentation.feedback WHERE home_customer_id = any(:ids)"
        )
        copy_leads = await pairs(
            "SELECT value, customer_id FROM segmentation.customer_fact WHERE home_customer_id = any(:ids) AND kind = 'campaign'"
        )
        owner_custom = await pairs("""SELECT id, customer_id FROM interaction.activity
            WHERE home_customer_id = any(:ids) AND type = 'order.shipped'""")
        copy_custom = await pairs(
            "SELECT event_id, customer_id FROM segmentation.custom_event WHERE home_customer_id = any(:ids)"
        )
    assert len(owner_feedback) == 2 and len(owner_leads) == 2, "the history has two feedbacks and two leads"
    assert len(owner_custom) == 2, "the history has two custom events"
    out = []
    for what, mine, theirs in [
        ("fact of", copy, owner),
        ("feedback", copy_feedback, owner_feedback),
        ("lead of campaign", copy_leads, owner_leads),
        ("custom event", copy_custom, owner_custom),
    ]:
        out += [
            f"segmentation: {what} {k} is with {mine.get(k)}, interaction's with {theirs.get(k)}"
            for k in mine.keys() | theirs.keys()
            if mine.get(k) != theirs.get(k)
        ]
    return out


def _consumed(e: Envelope) -> ConsumedEvent:
    return ConsumedEvent(e, INTERACTION_EVENT_TYPES[e.type].model_validate(e.data), None)  # type: ignore[arg-type]


async def deliver(feeder: Feeder, lc, events: list[Envelope], order_name: str) -> None:
    """The events in an arrival order ("reversed", or "shuffled-…": a seeded shuffle with repeats, in batches), each
    batch to every copy's own handler; clv's two consumers run side by side, each in its own order, on one record
    of merges."""
    if order_name == "reversed":
        deliveries = [[e] for e in reversed(events)]
        profit_deliveries = [[e] for e in events[len(events) // 2 :]] + [[e] for e in events[: len(events) // 2]]
    else:
        deliveries = shuffled_deliveries(random.Random(order_name), events, batches=6)
        profit_deliveries = shuffled_deliveries(random.Random(f"profit-{order_name}"), events, batches=5)
    for i in range(max(len(deliveries), len(profit_deliveries))):
        if i < len(deliveries):
            batch = deliveries[i]
            await feeder.apply([_consumed(e).payload for e in batch])
            async with feeder.sessions.begin() as session:
                await clv_apply(session, [_consumed(e) for e in batch])
            await lc.apply(batch)
        if i < len(profit_deliveries):
            async with feeder.sessions.begin() as session:
                await profit_apply(session, [_consumed(e) for e in profit_deliveries[i]])


@pytest.mark.parametrize("order_name", ["reversed", "shuffled-1", "shuffled-2", "shuffled-3"])
async def test_copies_follow_merge_chains_and_undos_in_any_arrival_order(interaction, lc, database_url, order_name):
    engine = make_engine(database_url, pool_size=2)
    feeder = Feeder(database_url)
    try:
        events, customers = await owner_history(interaction, engine, uuid.uuid4().hex[:8])
        assert {e.type for e in events} >= {"customer.merged", "customer.unmerged", "purchase.refunded"}
        await deliver(feeder, lc, events, order_name)

        survivors, spend = await owner_state(engine, customers)
        assert len(set(survivors.values())) == 4, "the history left four live customers (C, B, F, D)"
        divergences: list[str] = []
        for name, (summary, count, total, alias) in {
            "segmentation": ("segmentation.purchase_summary", "order_count", "total_spend", "segmentation.customer_alias"),
            "clv": ("clv.transaction_summary", "purchase_count", "total_spend - refunded_total", "clv.customer_alias"),
            "lifecycle": (
                "(select *, 'EUR' as currency from lifecycle.customer_stage) s",
                "order_count",
                "total_spend",
                "lifecycle.merged_customer",
            ),
            # The campaign report's copy keeps homes and places them through lifecycle's lookup at read time.
            "lifecycle campaigns": (CAMPAIGN_PURCHASES, "orders", "net", "lifecycle.merged_customer"),
        }.items():
            copy_survivors, copy_spend = await copy_state(engine, customers, summary, count, total, alias)
            divergences += [
                f"{name}: survivor of {cid} is {copy_survivors[cid]}, interaction's {s}"
                for cid, s in survivors.items()
                if copy_survivors[cid] != s
            ]
            divergences += [
                f"{name}: {key} holds {copy_spend.get(key)}, interaction {spend.get(key)}"
                for key in spend.keys() | copy_spend.keys()
                if copy_spend.get(key) != spend.get(key)
            ]
        touchpoints = await owner_touchpoints(engine, events)
        assert len(touchpoints) == 2 and set(touchpoints.values()) <= set(survivors.values())
        profit_survivors, profit_totals, placed = await profit_state(engine, customers, list(touchpoints))
        divergences += [
            f"profitability: survivor of {cid} is {profit_survivors[cid]}, interaction's {s}"
            for cid, s in survivors.items()
            if profit_survivors[cid] != s
        ]
        divergences += [
            f"profitability: {key} holds {profit_totals.get(key)}, interaction {spend.get(key)}"
            for key in spend.keys() | profit_totals.keys()
            if profit_totals.get(key) != spend.get(key)
        ]
        divergences += [
            f"profitability: touchpoint {t} is with {placed.get(t)}, in interaction with {c}"
            for t, c in touchpoints.items()
            if placed.get(t) != c
        ]
        divergences += await fact_divergences(engine, customers)
        assert not divergences, "\n".join(divergences)
    finally:
        await feeder.close()
        await engine.dispose()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_live_of_ids_agrees_with_the_chains(database_url, seed):
    """`live_sql` (placing a batch of facts: walks up from the ids only) names the same live customer as
    `chain_members_sql` (re-placing a chain) over random merges: chains, undone merges, and ids with two merges
    in force (an undo still on its way: the newer version holds; no version at all loses)."""
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(40)]
    rows = []
    for i, merged in enumerate(ids[1:], start=1):
        for _ in range(rng.choice([0, 1, 1, 2])):
            rows.append(
                {
                    "merge_id": uuid.UUID(int=rng.getrandbits(128)),
                    "survivor": rng.choice(ids[:i]),
                    "merged": merged,
                    "version": rng.choice([None, *range(1, 50)]),
                    "undone": rng.random() < 0.3,
                }
            )
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "insert into clv.customer_merge (merge_id, survivor_id, merged_id, version, undone) "
                    "values (:merge_id, :survivor, :merged, :version, :undone)"
                ),
                rows,
            )
            chains = {r.id: r.live for r in await conn.execute(sa.text(chain_members_sql("clv.customer_merge")), {"ids": ids})}
            lives = {r.id: r.live for r in await conn.execute(sa.text(live_sql("clv.customer_merge")), {"ids": ids})}
            await conn.execute(sa.text("delete from clv.customer_merge where merged_id = any(:ids)"), {"ids": ids})
    finally:
        await engine.dispose()
    assert lives == {cid: chains[cid] for cid in ids}
    assert sum(lives[cid] != cid for cid in ids) >= 10, "the random merges leave many ids merged away"


# Tables that keep an erased id on purpose: the record of erased ids itself, merges (ids only, ended), and the
# campaign report's anonymous purchase amounts (lifecycle/campaigns/projection.py).
KEEP_ERASED_IDS = {"erased_customer", "known_customer", "customer_merge", "campaign_purchase", "inbox"}


async def erased_rows(engine, erased: list[uuid.UUID]) -> list[str]:
    """Rows of the copies (segmentation, clv, lifecycle) whose customer or home is one of the erased ids."""
    out = []
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                sa.text("""SELECT table_schema, table_name, column_name FROM information_schema.columns
                WHERE table_schema IN ('segmentation', 'clv', 'lifecycle') AND data_type = 'uuid'
                  AND column_name IN ('customer_id', 'home_customer_id', 'survivor_id', 'merged_id')""")
            )
        ).all()
        for schema, table, column in columns:
            if table in KEEP_ERASED_IDS:
                continue
            n = (
                await conn.execute(sa.text(f"SELECT count(*) FROM {schema}.{table} WHERE {column} = any(:ids)"), {"ids": erased})
            ).scalar()
            if n:
                out.append(f"{schema}.{table}.{column}: {n} rows of an erased customer")
    return out


@pytest.mark.parametrize("order_name", ["reversed", "shuffled-1", "shuffled-2", "shuffled-3"])
async def test_copies_keep_nothing_of_an_erased_chain_in_any_arrival_order(interaction, lc, database_url, order_name):
    """After the history, C (with A merged into it) is erased: interaction publishes `customer.erased` for C and
    for A, each keyed by its id. A fact of home A published while A was merged into C travels keyed by C, so on a
    topic with several partitions it may reach a copy after A's erasure: placed at live(A) then, it made A a
    customer of the copy again, and no event removed it (the proving ground, seed 7). Every copy must end with no
    row about C or A, whatever the arrival order, and the customers not erased as interaction has them."""
    engine = make_engine(database_url, pool_size=2)
    feeder = Feeder(database_url)
    try:
        events, customers = await owner_history(interaction, engine, uuid.uuid4().hex[:8])
        c, a = customers[0], customers[1]
        async with engine.connect() as conn:
            start = (await conn.execute(sa.text("select max(id) from interaction.outbox"))).scalar()
        erasure = await _ok(await interaction.post(f"/v1/customers/{c}/erasure"))
        assert set(erasure["erased_ids"]) == {str(c), str(a)}
        async with engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("select payload from interaction.outbox where id > :s order by id"), {"s": start})
            ).scalars()
            erasures = [Envelope.model_validate(orjson.loads(r)) for r in rows]
        assert sorted(e.type for e in erasures) == ["customer.erased", "customer.erased"]
        # The facts as they were sent before the erasure (the outbox now holds them redacted), then the erasures.
        history = events + erasures
        await deliver(feeder, lc, history, order_name)

        divergences = await erased_rows(engine, [c, a])
        survivors, spend = await owner_state(engine, customers)
        live = [cid for cid in customers if cid not in (c, a)]
        for name, (summary, count, total, alias) in {
            "segmentation": ("segmentation.purchase_summary", "order_count", "total_spend", "segmentation.customer_alias"),
            "clv": ("clv.transaction_summary", "purchase_count", "total_spend - refunded_total", "clv.customer_alias"),
        }.items():
            copy_survivors, copy_spend = await copy_state(engine, live, summary, count, total, alias)
            divergences += [
                f"{name}: survivor of {cid} is {copy_survivors[cid]}, interaction's {survivors[cid]}"
                for cid in live
                if copy_survivors[cid] != survivors[cid]
            ]
            divergences += [
                f"{name}: {key} holds {copy_spend.get(key)}, interaction {spend.get(key)}"
                for key in {k for k in spend if k[0] in live} | copy_spend.keys()
                if copy_spend.get(key) != spend.get(key)
            ]
        assert not divergences, "\n".join(divergences)
    finally:
        await feeder.close()
        await engine.dispose()
