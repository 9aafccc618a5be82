"""Incremental aggregates equal a recomputation from the events, whatever the batching (hypothesis)."""

import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.segmentation.helpers import (
    T0,
    Feeder,
    erased,
    merged,
    purchase,
    refund,
    touch,
    unmerged,
    updated,
)


class Model:
    """What the aggregates must say, computed straight from the event history."""

    def __init__(self, customers: list[uuid.UUID]) -> None:
        self.customers = customers
        self.purchases: dict[uuid.UUID, dict] = {}
        self.refunds: dict[uuid.UUID, list] = defaultdict(list)
        self.touches: dict[uuid.UUID, dict] = {}
        self.attributes: dict[uuid.UUID, dict] = {}
        self.alias: dict[uuid.UUID, uuid.UUID] = {}
        self.merges: list[tuple[uuid.UUID, uuid.UUID, list, list]] = []
        self.rows: set[uuid.UUID] = set()
        self.gone: set[uuid.UUID] = set()

    def resolve(self, c: uuid.UUID) -> uuid.UUID:
        return self.alias.get(c, c)

    def live(self) -> list[uuid.UUID]:
        return [c for c in self.customers if c not in self.gone]

    def expected(self) -> dict:
        out = {}
        for c in self.rows:
            mine = [p for p in self.purchases.values() if p["owner"] == c]
            counted = [p for p in mine if not any(r[1] for r in self.refunds[p["id"]])]
            by_currency: dict[str, dict] = {}
            for p in counted:
                net = max(p["amount"] - sum(r[0] for r in self.refunds[p["id"]]), Decimal(0))
                s = by_currency.setdefault(p["currency"], {"n": 0, "spend": Decimal(0), "times": []})
                s["n"] += 1
                s["spend"] += net
                s["times"].append(p["at"])
            touches = [t["at"] for t in self.touches.values() if t["owner"] == c]
            out[c] = {
                "order_count": len(counted),
                "first_purchase_at": min((p["at"] for p in counted), default=None),
                "last_purchase_at": max((p["at"] for p in counted), default=None),
                "touchpoint_count": len(touches),
                "last_touch_at": max(touches, default=None),
                "attributes": {k: v for k, v in self.attributes.get(c, {}).items() if v is not None},
                "by_currency": {cur: (s["n"], s["spend"], min(s["times"]), max(s["times"]))
                                for cur, s in by_currency.items()},
            }
        return out


@st.composite
def histories(draw):
    customers = [uuid.uuid4() for _ in range(4)]
    model = Model(customers)
    events = []
    for _ in range(draw(st.integers(5, 40))):
        live = model.live()
        if not live:
            break
        op = draw(st.sampled_from(["purchase", "purchase", "refund", "touch", "update", "merge", "unmerge", "erase"]))
        c = draw(st.sampled_from(live))
        owner = model.resolve(c)
        if op == "purchase":
            p = purchase(c, str(draw(st.integers(0, 500))), draw(st.integers(0, 300)),
                         currency=draw(st.sampled_from(["EUR", "USD"])))
            model.purchases[p.purchase_id] = {"id": p.purchase_id, "owner": owner, "currency": p.currency,
                                              "amount": p.amount, "at": p.occurred_at}
            if draw(st.booleans()) and draw(st.booleans()):
                # A refund that arrives before its purchase.
                r = refund(owner, p.purchase_id, "5", cancelled=False)
                model.refunds[p.purchase_id].append((r.amount, False))
                events.append(r)
            model.rows.add(owner)
            events.append(p)
        elif op == "refund" and model.purchases:
            pid = draw(st.sampled_from(sorted(model.purchases)))
            holder = model.purchases[pid]["owner"]
            cancelled = draw(st.booleans())
            r = refund(holder, pid, str(draw(st.integers(1, 200))), cancelled=cancelled)
            model.refunds[pid].append((r.amount, cancelled))
            events.append(r)
        elif op == "touch":
            t = touch(c, draw(st.integers(0, 300)))
            model.touches[t.touchpoint_id] = {"owner": owner, "at": t.occurred_at}
            model.rows.add(owner)
            events.append(t)
        elif op == "update":
            attrs = {draw(st.sampled_from(["plan", "region"])): draw(st.sampled_from(["a", "b", None, 3]))}
            model.attributes.setdefault(owner, {}).update(attrs)
            model.rows.add(owner)
            events.append(updated(c, **attrs))
        elif op == "merge":
            others = [x for x in live if x not in model.alias and x != owner]
            if owner in model.alias or not others:
                continue
            m = draw(st.sampled_from(others))
            pids = [k for k, p in model.purchases.items() if p["owner"] == m]
            tids = [k for k, t in model.touches.items() if t["owner"] == m]
            for k in pids:
                model.purchases[k]["owner"] = owner
            for k in tids:
                model.touches[k]["owner"] = owner
            model.attributes[owner] = {**model.attributes.get(m, {}), **model.attributes.get(owner, {})}
            model.attributes.pop(m, None)
            for k, v in list(model.alias.items()):
                if v == m:
                    model.alias[k] = owner
            model.alias[m] = owner
            # A merge re-derives the survivor, which so has a row (empty if neither side had data yet).
            model.rows.add(owner)
            model.rows.discard(m)
            merge = merged(owner, m)
            model.merges.append((owner, m, pids, tids, merge.merge_id))
            events.append(merge)
        elif op == "unmerge" and model.merges:
            s, r, pids, tids, merge_id = model.merges.pop()
            if model.alias.get(r) != s or r in model.gone:
                continue
            del model.alias[r]
            for k in pids:
                if k in model.purchases:
                    model.purchases[k]["owner"] = r
            for k in tids:
                if k in model.touches:
                    model.touches[k]["owner"] = r
            model.rows.update({s, r})
            events.append(unmerged(s, r, pids, tids, merge_id))
        elif op == "erase" and c not in model.alias:
            for k in [k for k, p in model.purchases.items() if p["owner"] == c]:
                del model.purchases[k]
                model.refunds.pop(k, None)
            for k in [k for k, t in model.touches.items() if t["owner"] == c]:
                del model.touches[k]
            model.attributes.pop(c, None)
            model.rows.discard(c)
            model.gone.add(c)
            for k, v in list(model.alias.items()):
                if v == c or k == c:
                    model.gone.add(k)
                    del model.alias[k]
            model.merges = [m for m in model.merges if c not in m[:2]]
            events.append(erased(c))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(events)), max_size=4))))
    return model, events, cuts


async def db_state(feeder: Feeder, ids: list[uuid.UUID]) -> dict:
    async with feeder.engine.connect() as conn:
        aggregates = (await conn.execute(sa.text(
            "SELECT * FROM segmentation.customer_aggregate WHERE customer_id = ANY(:ids)"), {"ids": ids})).mappings().all()
        summaries = (await conn.execute(sa.text(
            "SELECT * FROM segmentation.purchase_summary WHERE customer_id = ANY(:ids)"), {"ids": ids})).mappings().all()
    out = {}
    for a in aggregates:
        out[a["customer_id"]] = {
            "order_count": a["order_count"], "first_purchase_at": a["first_purchase_at"],
            "last_purchase_at": a["last_purchase_at"], "touchpoint_count": a["touchpoint_count"],
            "last_touch_at": a["last_touch_at"], "attributes": a["attributes"],
            "by_currency": {s["currency"]: (s["order_count"], s["total_spend"], s["first_purchase_at"],
                                            s["last_purchase_at"])
                            for s in summaries if s["customer_id"] == a["customer_id"]},
        }
    return out


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(history=histories())
async def test_incremental_aggregates_equal_recomputation_from_events(feeder, history):
    model, events, cuts = history
    bounds = [0, *cuts, len(events)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        if end > start:
            await feeder.apply(events[start:end], rules=False)
    assert await db_state(feeder, model.customers) == model.expected()


async def test_redelivered_batch_changes_nothing_and_times_are_utc(feeder):
    c = uuid.uuid4()
    p = purchase(c, "10.00", 1)
    await feeder.apply([p, touch(c, 2)])
    await feeder.apply([p])  # the same purchase id again (a duplicate the inbox did not catch)
    state = await db_state(feeder, [c])
    assert state[c]["order_count"] == 1 and state[c]["by_currency"]["EUR"][1] == Decimal("10.0000")
    assert state[c]["last_touch_at"] == T0 + timedelta(days=2)
