"""Rule segments: membership equals a brute-force evaluation in Python on random data (custom event counts and
last occurrences included); kept current live."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SegmentMembershipChanged
from tests.services.segmentation.helpers import outbox_rows, purchase

NOW = datetime.now(UTC)
STAGES = ["acquisition", "development", "retention", "loyalty", None]
TIERS = ["gold", "silver", None]
EVENT_TYPES = ["order.shipped", "order.returned"]


def random_occurrences(rng: random.Random) -> list[tuple[str, datetime]]:
    """Custom events at whole days plus 12 hours before now (far from every window's edge), some in the future
    (not happened yet at the evaluation's now)."""
    return [
        (rng.choice(EVENT_TYPES), NOW + timedelta(days=rng.randint(-120, 3), hours=-12))
        for _ in range(rng.choice([0, 0, 1, 2, 4]))
    ]


def random_customer(rng: random.Random) -> dict:
    last = None if rng.random() < 0.2 else NOW - timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 23))
    attributes = {}
    if rng.random() < 0.7:
        attributes["plan"] = rng.choice(["free", "pro", "team"])
    if rng.random() < 0.6:
        attributes["score"] = rng.choice([1, 2.5, 7, "high"])
    return {
        "customer_id": uuid.uuid4(),
        "order_count": rng.randint(0, 8),
        "touchpoint_count": rng.randint(0, 5),
        "spend": Decimal(rng.randint(0, 30000)) / 100 if rng.random() < 0.8 else None,
        "clv": Decimal(rng.randint(0, 5000)) if rng.random() < 0.6 else None,
        "p_alive": rng.choice([None, 0.1, 0.5, 0.9]),
        "value_tier": rng.choice(TIERS),
        "stage": rng.choice(STAGES),
        "last_purchase_at": last,
        "first_purchase_at": last - timedelta(days=30) if last else None,
        "last_touch_at": None,
        "attributes": attributes,
        "events": random_occurrences(rng),
    }


def random_condition(rng: random.Random) -> dict:
    kind = rng.choice(["number", "text", "time", "attribute", "null", "event"])
    if kind == "event":
        event_type = rng.choice(EVENT_TYPES)
        if rng.random() < 0.5:
            window = rng.choice([{}, {"within_days": 7}, {"within_days": 30}, {"within_days": 90}])
            op = rng.choice(["eq", "ne", "gt", "gte", "lt", "lte", "between"])
            value = sorted(rng.sample([0, 1, 2, 3], 2)) if op == "between" else rng.choice([0, 1, 2])
            return {"field": "event_count", "event_type": event_type, **window, "op": op, "value": value}
        op = rng.choice(["within_last_days", "not_within_last_days", "before", "after", "is_null", "is_not_null"])
        if op.endswith("null"):
            return {"field": "event_last_at", "event_type": event_type, "op": op}
        value = rng.choice([7, 30, 90]) if op.endswith("days") else (NOW - timedelta(days=20, hours=6)).isoformat()
        return {"field": "event_last_at", "event_type": event_type, "op": op, "value": value}
    if kind == "number":
        name = rng.choice(["order_count", "touchpoint_count", "spend", "clv", "p_alive"])
        op = rng.choice(["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in"])
        pool = {
            "order_count": [0, 1, 3, 5],
            "touchpoint_count": [0, 2, 4],
            "spend": [0, 50, 150.5, 250],
            "clv": [0, 1000, 2500],
            "p_alive": [0.1, 0.5],
        }[name]
        if op == "between":
            low, high = sorted(rng.sample(pool, 2)) if len(pool) > 1 else (pool[0], pool[0])
            return {"field": name, "op": op, "value": [low, high]}
        if op in ("in", "not_in"):
            return {"field": name, "op": op, "value": rng.sample(pool, 2)}
        return {"field": name, "op": op, "value": rng.choice(pool)}
    if kind == "text":
        name, pool = rng.choice([("stage", STAGES[:-1]), ("value_tier", TIERS[:-1])])
        op = rng.choice(["eq", "ne", "in", "not_in"])
        return {"field": name, "op": op, "value": rng.sample(pool, 2) if op.endswith("in") else rng.choice(pool)}
    if kind == "time":
        op = rng.choice(["within_last_days", "not_within_last_days", "before", "after"])
        if op.endswith("days"):
            return {"field": "last_purchase_at", "op": op, "value": rng.choice([7, 30, 90])}
        return {"field": "first_purchase_at", "op": op, "value": (NOW - timedelta(days=60)).isoformat()}
    if kind == "attribute":
        name = rng.choice(["plan", "score"])
        op = rng.choice(["eq", "ne", "in", "not_in", "gt", "lte", "exists", "not_exists"])
        if op in ("exists", "not_exists"):
            return {"field": f"attributes.{name}", "op": op}
        if op in ("gt", "lte"):
            return {"field": f"attributes.{name}", "op": op, "value": 2}
        pool = ["free", "pro", "team", 1, 7, "high"]
        return {"field": f"attributes.{name}", "op": op, "value": rng.sample(pool, 2) if op.endswith("in") else rng.choice(pool)}
    return {"field": rng.choice(["clv", "stage", "last_purchase_at"]), "op": rng.choice(["is_null", "is_not_null"])}


def random_rule(rng: random.Random, depth: int = 0) -> dict:
    if depth >= 3 or rng.random() < 0.35:
        return random_condition(rng)
    group = rng.choice(["all", "any", "not"])
    if group == "not":
        return {"not": random_rule(rng, depth + 1)}
    return {group: [random_rule(rng, depth + 1) for _ in range(rng.randint(1, 3))]}


def value_of(c: dict, node: dict):
    name = node["field"]
    if name in ("event_count", "event_last_at"):
        # Occurrences of the type up to now (later ones have not happened yet), within the window if one is given.
        times = [
            t
            for event_type, t in c["events"]
            if event_type == node["event_type"]
            and t <= NOW
            and ("within_days" not in node or t >= NOW - timedelta(days=node["within_days"]))
        ]
        if name == "event_count":
            return len(times)
        return max(times, default=None)
    if name == "spend":
        return c["spend"] if c["spend"] is not None else Decimal(0)
    return c[name]


def evaluate(node: dict, c: dict) -> bool:
    """Brute force, written from the documented semantics: a condition on a missing value is false."""
    if "all" in node:
        return all(evaluate(n, c) for n in node["all"])
    if "any" in node:
        return any(evaluate(n, c) for n in node["any"])
    if "not" in node:
        return not evaluate(node["not"], c)
    name, op, v = node["field"], node["op"], node.get("value")
    if name.startswith("attributes."):
        key = name.split(".", 1)[1]
        present = key in c["attributes"]
        x = c["attributes"].get(key)
        if op == "exists":
            return present
        if op == "not_exists":
            return not present
        if not present:
            return False
        if op in ("gt", "lte"):
            if isinstance(x, bool) or not isinstance(x, int | float):
                return False
            return x > v if op == "gt" else x <= v

        def same(a, b) -> bool:
            return (
                type(a) is type(b)
                and a == b
                or (isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, str) and a == b)
            )

        if op == "eq":
            return same(x, v)
        if op == "ne":
            return not same(x, v)
        hit = any(same(x, item) for item in v)
        return hit if op == "in" else not hit
    x = value_of(c, node)
    if op == "is_null":
        return x is None
    if op == "is_not_null":
        return x is not None
    if x is None:
        return False
    if op == "within_last_days":
        return x >= NOW - timedelta(days=v)
    if op == "not_within_last_days":
        return not x >= NOW - timedelta(days=v)
    if op in ("before", "after"):
        t = datetime.fromisoformat(v)
        return x < t if op == "before" else x > t
    if isinstance(x, str):
        return {"eq": x == v, "ne": x != v, "in": x in v, "not_in": x not in v}[op]
    x = Decimal(str(x))
    if op == "between":
        return Decimal(str(v[0])) <= x <= Decimal(str(v[1]))
    if op in ("in", "not_in"):
        hit = x in [Decimal(str(i)) for i in v]
        return hit if op == "in" else not hit
    y = Decimal(str(v))
    return {"eq": x == y, "ne": x != y, "gt": x > y, "gte": x >= y, "lt": x < y, "lte": x <= y}[op]


async def insert_customers(engine, customers: list[dict]) -> None:
    async with engine.begin() as conn:
        for c in customers:
            await conn.execute(
                sa.text("""
                INSERT INTO segmentation.customer_aggregate (customer_id, order_count, touchpoint_count, clv, p_alive,
                    value_tier, stage, last_purchase_at, first_purchase_at, attributes)
                VALUES (:customer_id, :order_count, :touchpoint_count, :clv, :p_alive, :value_tier, :stage,
                    :last_purchase_at, :first_purchase_at, CAST(:attributes AS jsonb))"""),
                {
                    **{k: v for k, v in c.items() if k not in ("spend", "last_touch_at", "events")},
                    "attributes": json.dumps(c["attributes"]),
                },
            )
            for event_type, at in c.get("events", []):
                await conn.execute(
                    sa.text("""
                    INSERT INTO segmentation.custom_event (event_id, customer_id, home_customer_id, event_type,
                        occurred_at) VALUES (:id, :c, :c, :t, :at)"""),
                    {"id": uuid.uuid4(), "c": c["customer_id"], "t": event_type, "at": at},
                )
            if c["spend"] is not None:
                await conn.execute(
                    sa.text("""
                    INSERT INTO segmentation.purchase_summary (customer_id, currency, order_count, total_spend,
                        first_purchase_at, last_purchase_at) VALUES (:c, 'EUR', 1, :s, now(), now())"""),
                    {"c": c["customer_id"], "s": c["spend"]},
                )


async def test_rule_membership_equals_brute_force_on_random_data(client, feeder):
    rng = random.Random(20261130)
    customers = [random_customer(rng) for _ in range(150)]
    await insert_customers(feeder.engine, customers)
    selective = event_selective = 0
    for i in range(30):
        rule = random_rule(rng)
        expected = {c["customer_id"] for c in customers if evaluate(rule, c)}
        selective += 0 < len(expected) < len(customers)
        event_selective += 0 < len(expected) < len(customers) and "event_" in json.dumps(rule)
        preview = await client.post("/v1/segments/preview", json={"rule": rule})
        assert preview.status_code == 200, preview.text
        assert preview.json()["count"] == len(expected), rule
        created = await client.post("/v1/segments", json={"key": f"r{i}", "name": f"rule {i}", "rule": rule})
        assert created.status_code == 201, created.text
        members, cursor = set(), None
        while True:
            page = (
                await client.get(
                    f"/v1/segments/{created.json()['segment_id']}/members",
                    params={"limit": 40, **({"cursor": cursor} if cursor else {})},
                )
            ).json()
            members |= {uuid.UUID(m["customer_id"]) for m in page["items"]}
            if not (cursor := page["next_cursor"]):
                break
        assert members == expected, rule
        assert created.json()["summary"]["size"] == len(expected)
    assert selective >= 15, "the random rules should mostly select a proper subset"
    assert event_selective >= 4, "some of them over custom event counts and last occurrences"


async def test_a_removed_attribute_is_absent_to_rules(client, feeder):
    """A removed attribute is kept as a JSON null (it blocks a merged customer's value, as in interaction); rules see
    no attribute."""
    rng = random.Random(7)
    customers = [{**random_customer(rng), "attributes": attributes} for attributes in ({"plan": None}, {"plan": "pro"}, {})]
    await insert_customers(feeder.engine, customers)
    for op, value, count in [
        ("exists", None, 1),
        ("not_exists", None, 2),
        ("ne", "free", 1),
        ("not_in", ["free"], 1),
        ("lte", 2, 0),
    ]:
        rule = {"field": "attributes.plan", "op": op, **({} if value is None else {"value": value})}
        preview = await client.post("/v1/segments/preview", json={"rule": rule})
        assert preview.status_code == 200 and preview.json()["count"] == count, (rule, preview.text)


async def test_invalid_rule_is_a_422_with_the_reason(client):
    resp = await client.post("/v1/segments/preview", json={"rule": {"field": "ssn", "op": "eq", "value": "1"}})
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json")
    assert "unknown field 'ssn'" in resp.json()["detail"]
    resp = await client.post(
        "/v1/segmentation/schemes",
        json={"key": "bad", "name": "bad", "segments": [{"key": "all-but-one", "name": "x", "r": [1, 5], "f": [1, 4]}]},
    )
    assert resp.status_code == 422
    assert "R1F5" in resp.json()["detail"] and "exactly one segment" in resp.json()["detail"]


async def test_rule_segment_is_kept_current_as_events_arrive(client, feeder):
    customer = uuid.uuid4()
    await feeder.apply([purchase(customer, "60.00", 1)])
    created = (
        await client.post(
            "/v1/segments",
            json={"key": "big-spenders", "name": "Big spenders", "rule": {"field": "spend", "op": "gte", "value": 100}},
        )
    ).json()
    assert created["summary"]["size"] == 0
    await feeder.apply([purchase(customer, "50.00", 2)])
    history = (await client.get(f"/v1/customers/{customer}/segments/history")).json()["items"]
    assert [(h["segment_key"], h["left_at"]) for h in history] == [("rule:big-spenders", None)]
    [(_, payload)] = await outbox_rows(feeder.engine)
    event = Envelope.from_json(payload).payload(SegmentMembershipChanged)
    assert event.change == "entered" and event.kind == "rule" and event.run_id is None


async def test_user_scheme_drives_an_rfm_run(client, feeder):
    scheme = {
        "key": "two-halves",
        "name": "Recent or not",
        "segments": [
            {"key": "recent", "name": "Recent", "r": [4, 5], "f": [1, 5]},
            {"key": "older", "name": "Older", "r": [1, 3], "f": [1, 5]},
        ],
    }
    assert (await client.post("/v1/segmentation/schemes", json=scheme)).status_code == 201
    assert (await client.post("/v1/segmentation/schemes", json=scheme)).status_code == 409
    await feeder.apply([purchase(uuid.uuid4(), "10", d) for d in range(10)])
    resp = await client.post(
        "/v1/segmentation/runs", json={"kind": "rfm", "scheme": "two-halves", "as_of": "2026-02-01T00:00:00Z"}
    )
    assert resp.status_code == 202
    await client.executor.wait_idle()
    result = (await client.get(f"/v1/segmentation/runs/{resp.json()['run_id']}")).json()["result"]
    assert {s["key"]: s["size"] for s in result["segments"]} == {"rfm:two-halves:recent": 4, "rfm:two-halves:older": 6}
    unknown = await client.post("/v1/segmentation/runs", json={"kind": "rfm", "scheme": "nope"})
    assert unknown.status_code == 422
