"""Rule fields from interaction's facts: NPS/CSAT (latest score), channel, partner, campaign, lead source —
copied from the events, idempotent on redelivery, moved by merges and unmerges, gone with an erasure."""

import uuid
from datetime import timedelta

import sqlalchemy as sa

from shared.contracts import interaction
from tests.services.segmentation.helpers import T0, erased, merged, purchase, touch, unmerged


def feedback(
    customer: uuid.UUID, days: float, nps: int | None = None, csat: int | None = None, source: str = "survey"
) -> interaction.FeedbackRecorded:
    return interaction.FeedbackRecorded(
        customer_id=customer, feedback_id=uuid.uuid4(), source=source, nps=nps, csat=csat, occurred_at=T0 + timedelta(days=days)
    )


def lead(customer: uuid.UUID, campaign: str | None, lead_source: str | None, source: str = "ads") -> interaction.LeadCaptured:
    return interaction.LeadCaptured(
        customer_id=customer, source=source, campaign=campaign, lead_source=lead_source, occurred_at=T0
    )


async def matched(client, rule: dict) -> set[str]:
    resp = await client.post("/v1/segments/preview", json={"rule": rule})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == len(body["sample"])
    return set(body["sample"])


async def test_fact_fields_select_the_customers_that_have_them(client, feeder):
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feeder.apply(
        [
            purchase(a, "10", 1),  # channel web, partner shop
            touch(b, 1),  # channel email, partner desk
            lead(c, "spring-sale", "google"),
            lead(a, "newsletter", "referral", source="crm"),
            feedback(a, 1, nps=3, csat=2),
            feedback(a, 5, nps=9),  # latest nps 9, latest csat 2
            feedback(b, 1, nps=6),
        ]
    )
    assert await matched(client, {"field": "channel", "op": "eq", "value": "web"}) == {str(a)}
    assert await matched(client, {"field": "channel", "op": "in", "value": ["web", "email"]}) == {str(a), str(b)}
    assert await matched(client, {"field": "channel", "op": "not_in", "value": ["web"]}) == {str(b), str(c)}
    assert await matched(client, {"field": "partner", "op": "eq", "value": "crm"}) == {str(a)}
    assert await matched(client, {"field": "partner", "op": "eq", "value": "ads"}) == {str(c)}
    assert await matched(client, {"field": "campaign", "op": "eq", "value": "spring-sale"}) == {str(c)}
    assert await matched(client, {"field": "lead_source", "op": "in", "value": ["referral"]}) == {str(a)}
    assert await matched(client, {"field": "nps", "op": "gte", "value": 9}) == {str(a)}, "the latest score counts"
    assert await matched(client, {"field": "nps", "op": "lte", "value": 6}) == {str(b)}
    assert await matched(client, {"field": "csat", "op": "eq", "value": 2}) == {str(a)}
    assert await matched(client, {"field": "csat", "op": "is_null"}) == {str(b), str(c)}

    bad = await client.post("/v1/segments/preview", json={"rule": {"field": "campaign", "op": "gt", "value": 1}})
    assert bad.status_code == 422 and "campaign" in bad.json()["detail"]

    # A saved segment on a campaign is kept current as leads arrive; a redelivered lead changes nothing.
    created = (
        await client.post(
            "/v1/segments",
            json={"key": "spring", "name": "Spring sale", "rule": {"field": "campaign", "op": "eq", "value": "spring-sale"}},
        )
    ).json()
    assert created["summary"]["size"] == 1
    again = lead(b, "spring-sale", "google")
    await feeder.apply([again, again])
    members = (await client.get(f"/v1/segments/{created['segment_id']}/members")).json()["items"]
    assert {m["customer_id"] for m in members} == {str(b), str(c)}
    async with feeder.engine.connect() as conn:
        n = (
            await conn.execute(
                sa.text("SELECT count(*) FROM segmentation.customer_fact WHERE customer_id = :c AND kind = 'campaign'"), {"c": b}
            )
        ).scalar_one()
    assert n == 1


async def test_facts_follow_merges_unmerges_and_erasure(client, feeder):
    survivor, other = uuid.uuid4(), uuid.uuid4()
    p = purchase(other, "10", 1)
    await feeder.apply([p, lead(other, "spring-sale", None), feedback(other, 1, nps=10), touch(survivor, 1)])
    merge = merged(survivor, other)
    await feeder.apply([merge])
    assert await matched(client, {"field": "channel", "op": "eq", "value": "web"}) == {str(survivor)}
    assert await matched(client, {"field": "campaign", "op": "eq", "value": "spring-sale"}) == {str(survivor)}
    assert await matched(client, {"field": "nps", "op": "eq", "value": 10}) == {str(survivor)}
    await feeder.apply([unmerged(survivor, other, [p.purchase_id], [], merge.merge_id)])
    assert await matched(client, {"field": "channel", "op": "eq", "value": "web"}) == {str(other)}
    await feeder.apply([erased(survivor)])
    async with feeder.engine.connect() as conn:
        left = (
            await conn.execute(
                sa.text("""
            SELECT (SELECT count(*) FROM segmentation.customer_fact WHERE customer_id = :c)
                 + (SELECT count(*) FROM segmentation.feedback WHERE customer_id = :c)"""),
                {"c": survivor},
            )
        ).scalar_one()
    assert left == 0
