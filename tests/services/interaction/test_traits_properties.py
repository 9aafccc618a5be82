"""Property: whatever the arrival order, duplicates, late events, merges and unmerges, every customer's traits
equal a recomputation from the raw events (done here in Python, independently of the service's SQL), and the
traits ingestion extended batch by batch equal what the service's full recomputation gives."""

import itertools
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from tests.services.interaction.conftest import trust
from tests.services.interaction.events import event

from interaction.traits.service import recompute_traits

BASE = datetime(2026, 1, 1, tzinfo=UTC)
CHANNELS = ["web", "store", "email", "phone"]
_examples = itertools.count()


def at(hours: int) -> str:
    return (BASE + timedelta(hours=hours)).isoformat()


# An operation: ("order"|"refund"|"cancel"|"touch"|"feedback"|"identify"|"resend"|"undo", arguments…)
operation = st.one_of(
    st.tuples(
        st.just("order"),
        st.integers(0, 3),
        st.integers(1, 500),
        st.integers(0, 40),
        st.sampled_from(CHANNELS),
        st.sampled_from(["EUR", "USD"]),
    ),
    st.tuples(st.just("refund"), st.integers(0, 20), st.one_of(st.none(), st.integers(1, 300)), st.integers(0, 40)),
    st.tuples(st.just("cancel"), st.integers(0, 20), st.integers(0, 40)),
    st.tuples(st.just("touch"), st.integers(0, 3), st.sampled_from(CHANNELS), st.integers(0, 40)),
    st.tuples(st.just("feedback"), st.integers(0, 3), st.integers(0, 10), st.integers(1, 5), st.integers(0, 40)),
    st.tuples(st.just("identify"), st.integers(0, 3), st.integers(0, 2), st.integers(0, 40)),
    st.tuples(st.just("resend"), st.integers(0, 30)),
    st.tuples(
        st.just("undo"),
    ),
)


def subject_of(n: int, run: int) -> tuple[str, str]:
    """Four subjects over two partners, unique to this example so examples do not see each other."""
    return (f"shop{run}" if n < 2 else f"crm{run}", f"S{n}")


def build(ops: list[tuple], run: int) -> tuple[list[list[dict] | str], list[dict]]:
    """The steps to perform (batches of events, or 'undo') and every distinct event sent."""
    steps: list[list[dict] | str] = [[]]
    sent: list[dict] = []
    orders: list[tuple[tuple[str, str], str]] = []
    for op in ops:
        kind = op[0]
        new = None
        if kind == "order":
            subject = subject_of(op[1], run)
            order_id = f"O{len(orders)}"
            orders.append((subject, order_id))
            new = event(
                "order.completed",
                subject[1],
                {"order_id": order_id, "amount": str(op[2]), "currency": op[5], "channel": op[4], "occurred_at": at(op[3])},
                source=subject[0],
            )
        elif kind in ("refund", "cancel") and orders:
            subject, order_id = orders[op[1] % len(orders)]
            data = {"order_id": order_id, "occurred_at": at(op[-1])}
            if kind == "refund" and op[2] is not None:
                data["amount"] = str(op[2])
            new = event(f"order.{'refunded' if kind == 'refund' else 'cancelled'}", subject[1], data, source=subject[0])
        elif kind == "touch":
            subject = subject_of(op[1], run)
            new = event("interaction.logged", subject[1], {"channel": op[2], "occurred_at": at(op[3])}, source=subject[0])
        elif kind == "feedback":
            subject = subject_of(op[1], run)
            new = event(
                "feedback.submitted", subject[1], {"nps": op[2], "csat": op[3], "occurred_at": at(op[4])}, source=subject[0]
            )
        elif kind == "identify":
            subject = subject_of(op[1], run)
            new = event(
                "customer.identified",
                subject[1],
                {"identifiers": {"email": f"p{op[2]}-{run}@example.com"}, "occurred_at": at(op[3])},
                source=subject[0],
                time=at(op[3]),
            )
        elif kind == "resend" and sent:
            steps[-1].append(sent[op[1] % len(sent)])
        elif kind == "undo":
            steps.extend(["undo", []])
        if new is not None:
            new["id"] = uuid.uuid4().hex
            sent.append(new)
            steps[-1].append(new)
            if len(steps[-1]) >= 4:  # several batches, so later batches carry late events
                steps.append([])
    return steps, sent


def compute(customer_events: list[dict], all_events: list[dict]) -> dict:
    first_order: dict[tuple[str, str], dict] = {}
    for e in all_events:  # arrival order: the first event of an order makes the purchase
        if e["type"] == "order.completed":
            first_order.setdefault((e["source"], e["data"]["order_id"]), e)
    mine = {id(e) for e in customer_events}
    adjustments = defaultdict(list)
    for e in all_events:
        if e["type"] in ("order.refunded", "order.cancelled"):
            adjustments[(e["source"], e["data"]["order_id"])].append(e)
    spend: dict[str, dict] = {}
    channel_use: dict[str, list] = defaultdict(list)
    for key, order in first_order.items():
        if id(order) not in mine:
            continue
        adj = adjustments.get(key, [])
        if any(a["type"] == "order.cancelled" for a in adj):
            continue
        amount = Decimal(order["data"]["amount"])
        refunds = [a for a in adj if a["type"] == "order.refunded"]
        refunded = (
            amount
            if any("amount" not in a["data"] for a in refunds)
            else min(amount, sum((Decimal(a["data"]["amount"]) for a in refunds), Decimal(0)))
        )
        when = datetime.fromisoformat(order["data"]["occurred_at"])
        s = spend.setdefault(order["data"]["currency"], {"count": 0, "total": Decimal(0), "last": None})
        s["count"] += 1
        s["total"] += amount - refunded
        s["last"] = max(s["last"] or when, when)
        channel_use[order["data"]["channel"]].append(when)
    touches: dict[str, datetime] = {}
    nps = csat = None
    for e in customer_events:
        when = datetime.fromisoformat(e["data"].get("occurred_at") or e["time"])
        if e["type"] == "interaction.logged":
            channel_use[e["data"]["channel"]].append(when)
            touches[e["data"]["channel"]] = max(touches.get(e["data"]["channel"], when), when)
        if e["type"] == "feedback.submitted":
            rank = (when, e["source"], e["id"])
            if nps is None or rank > nps[0]:
                nps = (rank, e["data"]["nps"])
            if csat is None or rank > csat[0]:
                csat = (rank, e["data"]["csat"])
    preferred = min(channel_use, key=lambda c: (-len(channel_use[c]), -max(channel_use[c]).timestamp(), c), default=None)
    times = [datetime.fromisoformat(e["data"].get("occurred_at") or e["time"]) for e in customer_events]
    return {
        "purchase_count": sum(s["count"] for s in spend.values()),
        "spend": {c: (s["count"], s["total"], s["last"]) for c, s in spend.items()},
        "preferred_channel": preferred,
        "last_touchpoints": touches,
        "latest_nps": nps[1] if nps else None,
        "latest_csat": csat[1] if csat else None,
        "first_seen_at": min(times),
        "last_seen_at": max(times),
        "partners": sorted({e["source"] for e in customer_events}),
    }


def observed(profile: dict) -> dict:
    return {
        "purchase_count": profile["purchase_count"],
        "spend": {
            t["currency"]: (t["purchase_count"], Decimal(t["total_spend"]), datetime.fromisoformat(t["last_purchase_at"]))
            for t in profile["purchase_totals"]
        },
        "preferred_channel": profile["preferred_channel"],
        "last_touchpoints": {k: datetime.fromisoformat(v) for k, v in profile["last_touchpoints"].items()},
        "latest_nps": profile["latest_nps"]["score"] if profile["latest_nps"] else None,
        "latest_csat": profile["latest_csat"]["score"] if profile["latest_csat"] else None,
        "first_seen_at": datetime.fromisoformat(profile["first_seen_at"]),
        "last_seen_at": datetime.fromisoformat(profile["last_seen_at"]),
        "partners": profile["partners"],
    }


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=6, max_size=24))
async def test_traits_equal_a_recomputation_from_the_raw_events(client, engine, ops):
    run = next(_examples)
    await trust(client, f"shop{run}", f"crm{run}")  # their emails link their customers: merges happen
    steps, sent = build(ops, run)
    for step in steps:
        if step == "undo":
            async with engine.connect() as conn:
                merge_id = (
                    await conn.execute(
                        sa.text(
                            "select id from interaction.customer_merge where undone_at is null "
                            "order by merged_at desc, id limit 1"
                        )
                    )
                ).scalar()
            if merge_id is not None:
                note("a merge was undone")
                assert (await client.post(f"/v1/merges/{merge_id}/undo")).status_code == 200
        elif step:
            resp = await client.post("/v1/events", json=step)
            assert resp.status_code == 200, resp.text
    if not sent:
        return
    async with engine.connect() as conn:
        owner = {
            (r.source, r.external_id): r.customer_id
            for r in await conn.execute(
                sa.text("select source, external_id, customer_id from interaction.customer_identifier where kind = 'source'")
            )
        }
    subjects = {(e["source"], e["subject"]) for e in sent}
    if len({owner[s] for s in subjects}) < len(subjects):
        note("customers were merged")
    by_customer: dict[uuid.UUID, list[dict]] = defaultdict(list)
    for e in sent:
        by_customer[owner[(e["source"], e["subject"])]].append(e)
    for customer_id, events in by_customer.items():
        profile = (await client.get(f"/v1/customers/{customer_id}")).json()
        assert profile["customer_id"] == str(customer_id), "identifiers point at live customers only"
        assert observed(profile) == compute(events, sent), f"customer {customer_id}"
        timeline = (await client.get(f"/v1/customers/{customer_id}/timeline", params={"limit": 200})).json()
        assert sorted(e["event_id"] for e in timeline["items"]) == sorted(e["id"] for e in events)
    await _extended_equal_recomputed(engine, list(by_customer))


async def _extended_equal_recomputed(engine, customer_ids: list[uuid.UUID]) -> None:
    """Every stored trait (with the per-channel counts and the spend rows the profile does not show) is what
    `recompute_traits` writes from the whole history: what ingestion extended is exact, not an approximation."""

    async def traits(conn) -> list[tuple]:
        rows = await conn.execute(
            sa.text(
                "select c.id, c.first_seen_at, c.last_seen_at, c.purchase_count, c.last_purchase_at, c.preferred_channel,"
                " c.channel_use, c.last_touchpoints, c.latest_nps, c.latest_nps_at, c.latest_csat, c.latest_csat_at,"
                " c.partners, coalesce((select jsonb_agg(jsonb_build_array(s.currency, s.purchase_count, s.total_spend,"
                " s.average_spend, s.refunded, s.last_purchase_at) order by s.currency)"
                " from interaction.customer_spend s where s.customer_id = c.id), '[]')"
                " from interaction.customer c where c.id = any(:ids) order by c.id"
            ),
            {"ids": customer_ids},
        )
        return [tuple(r) for r in rows]

    async with engine.connect() as conn:
        before = await traits(conn)
        async with AsyncSession(bind=conn) as session:
            await recompute_traits(session, customer_ids)
            after = await traits(conn)
        await conn.rollback()
    assert before == after


async def test_feedback_as_old_as_the_latest_is_ordered_by_source_and_event_id_across_batches(client, engine):
    """A later batch's feedback with the same time as the stored latest: the tie is broken by source, then event
    id (as the recomputation breaks it), which only the rows hold, so that customer is recomputed."""
    run = next(_examples)
    source, when = f"shop{run}", at(5)

    async def send(event_id: str, nps: int) -> dict:
        feedback = event("feedback.submitted", "S0", {"nps": nps, "csat": 1, "occurred_at": when}, source=source)
        feedback["id"] = event_id
        assert (await client.post("/v1/events", json=[feedback])).status_code == 200
        async with engine.connect() as conn:
            customer_id = (
                await conn.execute(
                    sa.text("select customer_id from interaction.customer_identifier where source = :s and external_id = 'S0'"),
                    {"s": source},
                )
            ).scalar_one()
        return (await client.get(f"/v1/customers/{customer_id}")).json()

    assert (await send("b", 3))["latest_nps"]["score"] == 3
    assert (await send("a", 9))["latest_nps"]["score"] == 3  # same time, smaller event id: the stored one stays
    profile = await send("c", 7)
    assert profile["latest_nps"]["score"] == 7  # larger event id: the new one is the latest
    await _extended_equal_recomputed(engine, [uuid.UUID(profile["customer_id"])])
