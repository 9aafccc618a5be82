"""Partners: the `employee` kind the network-development programme names, and each partner's figures
(customers brought and reached, revenue, touchpoints, feedback, share of each segment) on a real Postgres."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.segmentation import SOURCE, SegmentKind, SegmentMembershipChanged
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.transport import IncomingMessage
from tests.services.conftest import serving
from tests.services.interaction.conftest import customer_of, trust
from tests.services.interaction.events import cancel, feedback, order, refund, touch

from interaction.app import create_app
from interaction.segment_copy.projection import segment_copy_subscription
from interaction.settings import InteractionSettings

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
async def app(database_url):
    settings = InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False)
    application = create_app(settings)
    async with serving(application) as client:
        application.state.client = client
        yield application


def by_email(e: dict, email: str) -> dict:
    e["data"]["identifiers"] = {"email": email}
    return e


def at(days: int) -> str:
    return (T0 + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def membership(cid, key: str, change: str, when: datetime) -> ConsumedEvent:
    payload = SegmentMembershipChanged(
        customer_id=cid,
        segment_id=uuid.uuid4(),
        segment_key=key,
        segment_name=key.title(),
        kind=SegmentKind.RFM,
        change=change,
        changed_at=when,
    )
    return ConsumedEvent(
        Envelope.wrap(payload, source=SOURCE, subject=str(cid)), payload, IncomingMessage("t", 0, 0, None, None, [])
    )


async def apply_segments(app, events: list[ConsumedEvent]) -> None:
    runtime = app.state.runtime
    async with runtime.session_factory() as session, session.begin():
        await segment_copy_subscription().handler(session, events)


async def test_employee_partners_and_each_partners_figures(app, engine):
    client = app.state.client
    await trust(client, "shop-eu")
    resp = await client.post(
        "/v1/partners", json={"id": "rep-anna", "name": "Anna (field sales)", "kind": "employee", "trust_contact_linking": True}
    )
    assert resp.status_code == 201, resp.text  # was 422: the kind did not exist
    assert (await client.get("/v1/partners", params={"kind": "employee"})).json()["items"][0]["id"] == "rep-anna"

    events = [
        # Ada: brought by the shop (her first fact), later served by Anna.
        by_email(order("C-1", "A-1", "100.00", at=at(0)), "ada@example.com"),
        refund("C-1", "A-1", "25.00", at=at(2)),
        by_email(touch("R-1", "phone", at=at(4), source="rep-anna"), "ada@example.com"),
        by_email(feedback("R-1", nps=10, csat=5, at=at(5), source="rep-anna"), "ada@example.com"),
        # Bob: brought by Anna, buys at the shop.
        by_email(touch("R-2", "store", at=at(1), source="rep-anna"), "bob@example.com"),
        by_email(order("C-2", "A-2", "40.00", at=at(3)), "bob@example.com"),
        by_email(order("C-2", "A-3", "15.00", currency="USD", at=at(6)), "bob@example.com"),
        # Cy: brought by Anna, unhappy; the shop order is cancelled.
        by_email(feedback("R-3", nps=3, at=at(2), source="rep-anna"), "cy@example.com"),
        by_email(order("C-3", "A-4", "60.00", at=at(7)), "cy@example.com"),
        cancel("C-3", "A-4", at=at(8)),
    ]
    resp = await client.post("/v1/events", json=events)
    assert resp.status_code == 200 and resp.json()["accepted"] == len(events), resp.text
    ada, bob, cy = [await customer_of(engine, s) for s in ("C-1", "C-2", "C-3")]
    assert await customer_of(engine, "R-1", source="rep-anna") == ada, "linked by email"

    now = datetime.now(UTC)
    await apply_segments(
        app,
        [
            membership(ada, "rfm:champions", "entered", now),
            membership(bob, "rfm:champions", "entered", now),
            membership(cy, "rfm:at_risk", "entered", now),
            membership(cy, "rfm:at_risk", "entered", now),
        ],
    )  # duplicated: changes nothing
    # Cy left at_risk; the older "entered" arriving afterwards does not bring her back.
    await apply_segments(app, [membership(cy, "rfm:at_risk", "left", now + timedelta(seconds=1))])
    await apply_segments(
        app,
        [membership(cy, "rfm:at_risk", "entered", now - timedelta(days=1)), membership(cy, "rfm:hibernating", "entered", now)],
    )

    shop = (await client.get("/v1/partners/shop-eu/figures")).json()
    assert (shop["customers_brought"], shop["customers_reached"], shop["touchpoints"]) == (1, 3, 0)
    assert [(r["currency"], r["orders"], Decimal(r["revenue"])) for r in shop["revenue"]] == [
        ("EUR", 2, Decimal("115")),
        ("USD", 1, Decimal("15")),
    ], "refund taken off, cancelled order left out"
    assert shop["revenue"][0]["revenue"] == "115.0000"
    assert shop["feedback"]["responses"] == 0 and shop["feedback"]["nps"] is None
    champions = next(s for s in shop["segments"] if s["segment_key"] == "rfm:champions")
    assert (champions["members"], champions["brought"], champions["reached"], champions["share"]) == (2, 1, 2, 0.5)

    anna = (await client.get("/v1/partners/rep-anna/figures")).json()
    assert (anna["customers_brought"], anna["customers_reached"], anna["touchpoints"]) == (2, 3, 2)
    assert anna["revenue"] == []
    fb = anna["feedback"]
    assert (fb["responses"], fb["nps_responses"], fb["csat_responses"]) == (2, 2, 1)
    assert fb["nps"] == 0.0 and fb["mean_nps"] == 6.5 and fb["mean_csat"] == 5.0  # one promoter, one detractor
    shares = {s["segment_key"]: (s["members"], s["brought"], s["share"]) for s in anna["segments"]}
    assert shares == {"rfm:champions": (2, 1, 0.5), "rfm:hibernating": (1, 1, 1.0)}, "at_risk has no member left"
    assert [s["segment_key"] for s in anna["segments"]] == ["rfm:hibernating", "rfm:champions"], "largest share first"

    assert (await client.get("/v1/partners/nobody/figures")).status_code == 404


async def test_satisfaction_totals_and_trends_by_segment_partner_and_proposition(app, engine):
    client = app.state.client
    await trust(client, "shop-eu", "rep-anna")

    def answer(subject, source, when, proposition=None, **scores):
        e = by_email(feedback(subject, at=when, source=source, **scores), f"{subject.lower()}@example.com")
        if proposition:
            e["data"]["proposition_id"] = proposition
        return e

    events = [
        answer("c1", "shop-eu", "2026-10-01T09:00:00Z", "P1", nps=10, csat=5),
        answer("c2", "shop-eu", "2026-10-02T09:00:00Z", "P1", nps=6, csat=3),
        answer("c3", "rep-anna", "2026-11-03T09:00:00Z", "P2", nps=8),
        answer("c1", "rep-anna", "2026-11-10T09:00:00Z", csat=4),
        answer("c2", "shop-eu", "2026-11-20T09:00:00Z", nps=9),
        answer("c2", "shop-eu", "2026-08-20T09:00:00Z", nps=0),
    ]  # before the period
    resp = await client.post("/v1/events", json=events)
    assert resp.status_code == 200, resp.text
    c1, c2 = await customer_of(engine, "c1"), await customer_of(engine, "c2")
    now = datetime.now(UTC)
    await apply_segments(app, [membership(c1, "rfm:champions", "entered", now), membership(c2, "rfm:champions", "entered", now)])
    period = {"from": "2026-09-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}

    overall = (await client.get("/v1/satisfaction", params=period)).json()
    [total] = overall["totals"]
    assert (total["group"], total["responses"], total["nps_responses"]) == (None, 5, 4)
    assert (total["promoters"], total["passives"], total["detractors"], total["nps"]) == (2, 1, 1, 25.0)
    assert (total["csat_responses"], total["mean_csat"], total["csat"]) == (3, 4.0, 66.7)
    assert [(p["period"][:10], p["responses"], p["nps"]) for p in overall["trend"]] == [
        ("2026-10-01", 2, 0.0),
        ("2026-11-01", 3, 50.0),
    ]
    weekly = (await client.get("/v1/satisfaction", params={**period, "interval": "week"})).json()
    assert [p["period"][:10] for p in weekly["trend"]] == ["2026-09-28", "2026-11-02", "2026-11-09", "2026-11-16"]

    by_partner = (await client.get("/v1/satisfaction", params={**period, "group_by": "partner"})).json()
    partners = {t["group"]: t for t in by_partner["totals"]}
    assert (partners["shop-eu"]["responses"], partners["shop-eu"]["nps"]) == (3, 33.3)
    assert (partners["rep-anna"]["nps"], partners["rep-anna"]["csat"]) == (0.0, 100.0)
    props = (await client.get("/v1/satisfaction", params={**period, "group_by": "proposition"})).json()
    assert {t["group"]: t["responses"] for t in props["totals"]} == {"P1": 2, "P2": 1}
    assert {(p["group"], p["period"][:7]) for p in props["trend"]} == {("P1", "2026-10"), ("P2", "2026-11")}
    segments = (await client.get("/v1/satisfaction", params={**period, "group_by": "segment"})).json()
    assert [(t["group"], t["responses"], t["nps"]) for t in segments["totals"]] == [("rfm:champions", 4, 33.3)]

    for bad in (
        {"group_by": "planet"},
        {"interval": "year"},
        {"from": "2026-12-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {"from": "2026-01-01"},
        # Instants whose UTC (or the default year before them) leaves datetime's range: were a 500.
        {"to": "0001-01-01T00:00:00+14:00"},
        {"from": "9999-12-31T23:59:59-14:00"},
    ):
        r = await client.get("/v1/satisfaction", params=bad)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), (bad, r.text)
