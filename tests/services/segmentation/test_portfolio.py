"""The portfolio matrix orders customers as its quadrant names say, per currency (real Postgres, through the API)."""

import uuid
from decimal import Decimal

from shared.contracts import clv
from tests.services.segmentation.helpers import T0, purchase
from tests.services.segmentation.test_runs_api import run


def clv_in(customer: uuid.UUID, amount: float, currency: str) -> clv.CustomerValueUpdated:
    return clv.CustomerValueUpdated(
        customer_id=customer,
        currency=currency,
        historical_value=Decimal(0),
        current_value=Decimal(0),
        potential_value=Decimal(0),
        clv=Decimal(str(amount)),
        probability_alive=0.5,
        expected_purchases=1.0,
        tier="gold",
        as_of=T0,
    )


async def members(client, key: str) -> set[str]:
    segments = (await client.get("/v1/segments", params={"family": "portfolio"})).json()["items"]
    segment = next(s for s in segments if s["key"] == key)
    page = (await client.get(f"/v1/segments/{segment['segment_id']}/members", params={"limit": 500})).json()
    return {m["customer_id"] for m in page["items"]}


async def test_quadrants_order_customers_by_value_within_each_currency(client, feeder):
    # 20 EUR customers with CLVs 10..200 and 20 USD customers with CLVs 100× larger; engagement (orders and
    # recency) is unrelated to value, so every quadrant is populated. One EUR threshold for both would put every
    # USD customer in "high value" and every EUR customer in "low value".
    value_of: dict[str, tuple[str, float]] = {}
    events = []
    for currency, scale in (("EUR", 10.0), ("USD", 1000.0)):
        for i in range(20):
            c = uuid.uuid4()
            value_of[str(c)] = (currency, scale * (i + 1))
            orders = 1 + (i * 7) % 5
            for k in range(orders):
                events.append(purchase(c, "20.00", days=300 + ((i * 13) % 20) * 3 + k, currency=currency))
            events.append(clv_in(c, scale * (i + 1), currency))
    await feeder.apply(events)

    await run(client, kind="tiers", currency="EUR", as_of="2026-12-31T00:00:00Z")
    matrix = (await client.get("/v1/segmentation/portfolio-matrix")).json()
    thresholds = {(t["currency"], t["basis"]): t for t in matrix["value_thresholds"]}
    assert set(thresholds) == {("EUR", "clv"), ("USD", "clv")}
    assert matrix["value_currency"] == "EUR" and matrix["value_basis"] == "clv"
    assert matrix["value_threshold"] == thresholds[("EUR", "clv")]["value_threshold"]

    quadrant_of = {}
    for q in ("maintain", "invest", "develop", "let-go"):
        for customer in await members(client, f"portfolio:{q}"):
            quadrant_of[customer] = q
    assert set(quadrant_of) == set(value_of)

    for currency in ("EUR", "USD"):
        mine = {c: v for c, (cur, v) in value_of.items() if cur == currency}
        high = [v for c, v in mine.items() if quadrant_of[c] in ("maintain", "invest")]
        low = [v for c, v in mine.items() if quadrant_of[c] in ("develop", "let-go")]
        assert len(high) == len(low) == 10, f"{currency}: half the customers are above their currency's median"
        assert min(high) > max(low), f"{currency}: every high-value customer is worth more than every low-value one"
        assert min(high) >= thresholds[(currency, "clv")]["value_threshold"] > max(low)

    by_key = {q["key"]: q for q in matrix["quadrants"]}
    # The figures shown agree with the names: a high-value quadrant averages more than a low-value one, in the
    # headline figure and in every currency.
    assert by_key["invest"]["average_value"] > by_key["develop"]["average_value"]
    assert by_key["maintain"]["average_value"] > by_key["let-go"]["average_value"]
    for currency in ("EUR", "USD"):
        average = {k: next(g["average_value"] for g in q["by_group"] if g["currency"] == currency) for k, q in by_key.items()}
        assert min(average["invest"], average["maintain"]) > max(average["develop"], average["let-go"])
