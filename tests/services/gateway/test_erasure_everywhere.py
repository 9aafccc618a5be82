"""R8 end to end: a customer's PII, put in through every door, is gone from every schema, route and queued webhook.

The customer is known by email and phone (two partners, so two customers merge; a third is merged by
hand), and the PII also rides in free text and in ids: an order id, a refund reason, a touchpoint summary,
feedback, a lead's campaign and source, a partner deal's owner, a manual lifecycle move's reason and actor,
a hand-made deal's title, owner and the actor who lost it, a hand merge's reason, plus a field no contract
knows (`note`). A webhook receiver answers 500 until the erasure is done, so the deliveries of a
subscription to every event type are still queued (retrying) at erasure. After erasure every text, JSON
and bytea column of every table is scanned (tests/pii_scan.py), the read routes are searched, and what the
webhook sends once the receiver recovers must not carry the PII.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy as sa

from shared.contracts.envelope import Envelope
from shared.contracts.interaction import INTERACTION_EVENT_TYPES, SOURCE, CustomerErased
from shared.contracts.lifecycle import SOURCE as LIFECYCLE_SOURCE
from shared.contracts.lifecycle import Stage, StageChanged
from shared.contracts.topics import INTERACTION_EVENTS, LIFECYCLE_EVENTS
from shared.db import make_engine
from shared.messaging.transport import OutgoingMessage
from tests.pii_scan import find_pii, phone_forms
from tests.services.gateway.conftest import Stack, gateway_stack
from tests.services.gateway.test_webhooks import Receiver, receiver, subscribe
from tests.support import wait_until

EMAIL, PHONE_GIVEN, PHONE = "ada.lovelace@example.com", "+44 20 7946 0958", "+442079460958"
NAME = "Ada Lovelace"
NEEDLES = [EMAIL, NAME, "Lovelace", *phone_forms(PHONE, PHONE_GIVEN, "020 7946 0958")]
OTHER_EMAIL = "grace.hopper@example.com"  # a customer who is not erased: the scan must still find her


def event(source: str, subject: str, type_: str, data: dict, time: str = "2026-11-01T10:00:00Z") -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": time,
        "data": data,
    }


def ada_events() -> list[dict]:
    ids = {"email": EMAIL, "phone": PHONE_GIVEN}
    shop, crm = "shop-eu", "crm-eu"
    return [
        event(
            shop,
            "C-ada",
            "customer.identified",
            {
                "identifiers": ids,
                "attributes": {"name": NAME, "contact": f"{NAME} <{EMAIL}>", "tier_hint": "gold"},
                "consent": {"email_marketing": True},
            },
        ),
        event(
            shop,
            "C-ada",
            "order.completed",
            {
                "order_id": f"ORD-{EMAIL}",
                "amount": "59.90",
                "currency": "EUR",
                "channel": "web",
                "note": f"ring {PHONE_GIVEN} before delivery",
            },
            "2026-11-02T10:00:00Z",
        ),
        event(
            shop,
            "C-ada",
            "order.completed",
            # A partner's free-text channel holding her email: kept in the channel traits until erased.
            {"order_id": f"ORD-{PHONE}", "amount": "10.00", "currency": "EUR", "channel": EMAIL},
            "2026-11-03T10:00:00Z",
        ),
        event(
            shop,
            "C-ada",
            "order.refunded",
            {"order_id": f"ORD-{PHONE}", "reason": f"{NAME} changed her mind"},
            "2026-11-04T10:00:00Z",
        ),
        event(
            shop,
            "C-ada",
            "interaction.logged",
            {"channel": "phone", "outcome": EMAIL, "summary": f"called {PHONE_GIVEN}", "note": EMAIL},
            "2026-11-05T10:00:00Z",
        ),
        event(
            shop,
            "C-ada",
            "feedback.submitted",
            {"nps": 9, "comment": f"signed {NAME}", "proposition_id": EMAIL},
            "2026-11-06T10:00:00Z",
        ),
        # Another partner knows her, at first without an identifier: a second customer.
        event(
            crm,
            "crm-ada",
            "lead.captured",
            {"campaign": f"spring-{EMAIL}", "lead_source": PHONE, "qualified": True},
            "2026-11-07T10:00:00Z",
        ),
    ]


def ada_linked() -> list[dict]:
    """The second partner learns her email: the two customers merge."""
    return [
        event(
            "crm-eu",
            "crm-ada",
            "deal.updated",
            {
                "identifiers": {"email": EMAIL},
                "deal_id": f"D-{EMAIL}",
                "pipeline": "sales",
                "stage": "qualified",
                "owner": f"{NAME} <{EMAIL}>",
                "lost_reason": PHONE,
            },
            "2026-11-08T10:00:00Z",
        )
    ]


def grace_events() -> list[dict]:
    return [
        event(
            "shop-eu",
            "C-grace",
            "order.completed",
            {"identifiers": {"email": OTHER_EMAIL}, "order_id": f"ORD-{OTHER_EMAIL}", "amount": "5.00", "currency": "EUR"},
        )
    ]


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    """The whole system, its webhooks allowed to reach this test's receiver on loopback."""
    async with gateway_stack(database_url, webhook_poll_interval_s=0.1, webhook_allowed_hosts="127.0.0.1") as s:
        yield s


async def test_erasure_leaves_no_pii_in_any_schema_route_or_webhook(stack: Stack) -> None:
    engine = make_engine(stack.database_url)
    async with receiver() as rec, stack.client() as admin:
        rec.failing = True  # deliveries stay queued until the erasure
        sub = await subscribe(stack, rec.url, sorted(_every_event_type()))
        for partner in ("shop-eu", "crm-eu"):  # partners whose emails and phones may link customers
            resp = await admin.post(
                "/v1/partners", json={"id": partner, "name": partner, "kind": "retailer", "trust_contact_linking": True}
            )
            assert resp.status_code == 201, resp.text

        resp = await admin.post("/v1/events", json=ada_events() + grace_events())
        assert resp.status_code == 200 and resp.json()["accepted"] == 8, resp.text
        ada = await _customer_of(engine, "shop-eu", "C-ada")
        assert await _customer_of(engine, "crm-eu", "crm-ada") != ada
        resp = await admin.post("/v1/events", json=ada_linked())
        assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
        await wait_until(lambda: _merged(engine, "crm-eu", "crm-ada", ada), timeout=30, message="the merge")

        # Doors of the lifecycle service: a manual move and a hand-made deal, with PII in their free text.
        await wait_until(lambda: _has_stage(admin, ada), timeout=30, message="a lifecycle stage")
        stage = (await admin.get(f"/v1/customers/{ada}/lifecycle")).json()["stage"]
        to = {"development": "retention", "retention": "loyalty", "acquisition": "development"}.get(stage, "churned")
        move = await admin.post(
            f"/v1/customers/{ada}/lifecycle/moves",
            json={"to_stage": to, "reason": f"{NAME} asked by phone {PHONE_GIVEN}", "actor": EMAIL},
        )
        assert move.status_code == 201, move.text
        deal = await admin.post(
            "/v1/deals", json={"customer_id": str(ada), "pipeline": "sales", "title": f"Renewal for {NAME}", "owner": EMAIL}
        )
        assert deal.status_code == 201, deal.text
        lost = await admin.post(
            f"/v1/deals/{deal.json()['id']}/moves", json={"stage": "lost", "lost_reason": "price", "actor": EMAIL}
        )
        assert lost.status_code == 201, lost.text
        # A merge by hand, its reason naming her.
        resp = await admin.post(
            "/v1/events",
            json=[
                event(
                    "shop-eu",
                    "C-ada-old",
                    "order.completed",
                    {"order_id": "O-3", "amount": "1.00", "currency": "EUR"},
                    "2026-11-09T10:00:00Z",
                )
            ],
        )
        assert resp.status_code == 200, resp.text
        old = await _customer_of(engine, "shop-eu", "C-ada-old")
        merge = await admin.post(
            "/v1/merges", json={"customer_ids": [str(ada), str(old)], "reason": f"same person: {NAME}, {PHONE_GIVEN}"}
        )
        assert merge.status_code == 201 and merge.json()["survivor_id"] == str(ada), merge.text

        # Before erasure the PII is held: the scan finds it (so a clean scan later means something).
        await _drained(engine)
        # The composed view, for her and for an id merged into her: the gateway's copy of it holds her profile.
        for cid in (ada, old):
            view = await admin.get(f"/v1/customers/{cid}")
            assert view.status_code == 200 and EMAIL in view.text, view.text
        before = await find_pii(engine, NEEDLES)
        assert {(s, t) for s, t, _, _ in before} >= {
            ("gateway", "customer_view_copy"),
            ("interaction", "activity"),
            ("interaction", "customer_merge"),
            ("gateway", "webhook_delivery"),
            ("lifecycle", "customer_fact"),
            ("lifecycle", "deal"),
            ("lifecycle", "deal_stage_history"),
        }, before
        timeline = (await admin.get(f"/v1/customers/{ada}/timeline", params={"limit": 200})).text
        assert EMAIL in timeline

        erased = await admin.post(f"/v1/customers/{ada}/erasure")
        assert erased.status_code == 200, erased.text
        erased_ids = erased.json()["erased_ids"]
        assert len(erased_ids) == 3, "the merged-away customers are erased with the survivor"
        await wait_until(
            lambda: _erasure_applied(engine, erased_ids), timeout=60, message="customer.erased applied by every service"
        )
        await _drained(engine)

        # Every column of every table of every schema.
        hits = await find_pii(engine, NEEDLES)
        assert hits == [], f"PII left after erasure: {hits}"
        assert await find_pii(engine, [OTHER_EMAIL]), "the scan finds the customer who was not erased"

        # The read routes.
        routes = [
            f"/v1/customers/{ada}",
            f"/v1/customers/{ada}/timeline?limit=200",
            f"/v1/customers/{ada}/export",
            "/v1/partners/shop-eu/touchpoints",
            "/v1/partners/crm-eu/touchpoints",
            f"/v1/customers/{ada}/lifecycle",
            f"/v1/customers/{ada}/deals",
            "/v1/deals",
            f"/v1/customers/{ada}/merges",
            f"/v1/webhooks/{sub['id']}/deliveries?limit=200",
        ]
        for path in routes:
            body = (await admin.get(path)).text
            assert not [n for n in NEEDLES if n.lower() in body.lower()], f"{path} still shows PII: {body[:2000]}"
        export = (await admin.get(f"/v1/customers/{ada}/export")).json()
        assert len(export["purchases"]) == 3, "anonymous facts stay"

        # The receiver recovers: none of what is sent from now on carries the PII.
        sent_before = len(rec.received)
        rec.failing = False
        await wait_until(lambda: _erasure_delivered(rec, erased_ids), timeout=60, message="customer.erased delivered")
        await asyncio.sleep(0.5)  # anything else still due would go out now
        for r in rec.received[sent_before:]:
            assert not [n for n in NEEDLES if n.lower().encode() in r["body"].lower()], r["body"][:2000]
    await engine.dispose()


def _every_event_type() -> set[str]:
    from gateway.webhooks.events import DOMAIN_EVENT_TYPES

    return set(DOMAIN_EVENT_TYPES) | set(INTERACTION_EVENT_TYPES)


async def _customer_of(engine, source: str, subject: str) -> uuid.UUID:
    async def found() -> bool:
        return await _identifier(engine, source, subject) is not None

    await wait_until(found, timeout=30, message=f"customer {source}/{subject}")
    return await _identifier(engine, source, subject)


async def _identifier(engine, source: str, subject: str) -> uuid.UUID | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "SELECT customer_id FROM interaction.customer_identifier WHERE kind = 'source' AND source = :s "
                    "AND external_id = :e"
                ),
                {"s": source, "e": subject},
            )
        ).scalar()


async def _merged(engine, source: str, subject: str, survivor: uuid.UUID) -> bool:
    return await _identifier(engine, source, subject) == survivor


async def _has_stage(admin, customer: uuid.UUID) -> bool:
    return (await admin.get(f"/v1/customers/{customer}/lifecycle")).status_code == 200


async def _drained(engine) -> None:
    """Every outbox sent and every consumer caught up (the inbox counts stop moving)."""

    async def quiet() -> bool:
        async with engine.connect() as conn:
            unsent = 0
            for schema in ("interaction", "segmentation", "clv", "lifecycle", "gateway"):
                unsent += (await conn.execute(sa.text(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"))).scalar()
        return unsent == 0

    await wait_until(quiet, timeout=60, message="outboxes drained")
    await asyncio.sleep(1.0)  # the consumers apply what the relays just sent


async def _erasure_applied(engine, erased_ids: list[str]) -> bool:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT event_id, payload FROM interaction.outbox"))).all()
        events = [r.event_id for r in rows if orjson.loads(r.payload)["type"] == "customer.erased"]
        if len(events) < len(erased_ids):
            return False
        for schema in ("segmentation", "clv", "lifecycle", "gateway"):
            seen = (
                await conn.execute(
                    sa.text(f"SELECT count(DISTINCT event_id) FROM {schema}.inbox WHERE event_id = ANY(:ids)"), {"ids": events}
                )
            ).scalar()
            if seen < len(events):
                return False
    return True


async def _erasure_delivered(rec, erased_ids: list[str]) -> bool:
    got = {r["event"]["subject"] for r in rec.delivered() if r["event"]["type"] == "customer.erased"}
    return set(erased_ids) <= got


async def test_the_gateway_forgets_queued_deliveries_and_queues_none_after_erasure(database_url: str) -> None:
    """Topics are not ordered with each other: a stage change may reach the gateway after `customer.erased`."""
    async with (
        receiver() as rec,
        gateway_stack(
            database_url,
            services=(),
            webhook_poll_interval_s=0.05,
            webhook_allowed_hosts="127.0.0.1",
            webhook_backoff_base_s=0.05,
        ) as stack,
    ):
        rec.failing = True  # deliveries stay queued until the erasure
        await subscribe(stack, rec.url, ["stage.changed", "customer.erased"])
        ada, other = uuid.uuid4(), uuid.uuid4()
        queued = _stage_changed(ada, f"asked by {EMAIL}")
        await _publish(stack, LIFECYCLE_EVENTS, [queued, _stage_changed(other, "rule")])
        await wait_until(lambda: _answered(rec, queued.id), timeout=30, message="the first attempt")

        erasure = Envelope.wrap(CustomerErased(customer_id=ada, erased_at=datetime.now(UTC)), source=SOURCE, subject=str(ada))
        await _publish(stack, INTERACTION_EVENTS, [erasure])
        late = _stage_changed(ada, f"late news about {EMAIL}")
        await _publish(stack, LIFECYCLE_EVENTS, [late])
        await wait_until(lambda: _answered(rec, erasure.id), timeout=30, message="the erasure notice")
        sent_after = len(rec.received)
        rec.failing = False
        await wait_until(lambda: _delivered(rec, erasure.id), timeout=30, message="the erasure notice delivered")
        await asyncio.sleep(0.5)
        assert not [r for r in rec.received[sent_after:] if EMAIL.encode() in r["body"]]
        assert not [r for r in rec.received if r["event"]["id"] == late.id], "nothing is queued after the erasure"
        assert await find_pii(stack.database_url, [EMAIL]) == []
        engine = make_engine(stack.database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT customer_id FROM gateway.customer_view_copy"))).scalars().all()
        await engine.dispose()
        assert rows == [other], "an event after the erasure makes no copy of the erased customer again"


def _stage_changed(customer: uuid.UUID, reason: str) -> Envelope:
    return Envelope.wrap(
        StageChanged(customer_id=customer, from_stage=None, to_stage=Stage.CHURNED, changed_at=datetime.now(UTC), reason=reason),
        source=LIFECYCLE_SOURCE,
        subject=str(customer),
    )


async def _publish(stack: Stack, topic: str, events: list[Envelope]) -> None:
    await stack.app.state.runtime.transport.send_batch([OutgoingMessage(topic, e.to_json(), e.subject.encode()) for e in events])


async def _answered(rec: Receiver, event_id: str) -> bool:
    return any(r["event"]["id"] == event_id for r in rec.received)


async def _delivered(rec: Receiver, event_id: str) -> bool:
    return any(r["event"]["id"] == event_id for r in rec.delivered())
