"""Webhooks against a local receiver on 127.0.0.1: signature, retries after 500s, per-customer order,
redelivery, a stage-change-only subscription fed by a real order through the services, and custom event types
filtered by type."""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp import web

from deploy.local.ports import free_port
from shared.contracts.envelope import Envelope
from shared.contracts.lifecycle import SOURCE, Stage, StageChanged
from shared.contracts.topics import LIFECYCLE_EVENTS
from shared.messaging.transport import OutgoingMessage
from tests.e2e.processes import order_completed
from tests.services.gateway.conftest import Stack, gateway_stack
from tests.support import wait_until

from gateway.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

# The receivers listen on loopback, which webhooks may only reach when explicitly allowed (development, tests).
LOCAL_RECEIVERS = "127.0.0.1"


@dataclass
class Receiver:
    url: str
    received: list[dict] = field(default_factory=list)  # every request, in arrival order
    fail_first: dict[str, int] = field(default_factory=dict)  # event id -> how many 500s before a 200
    failing: bool = False  # answers 500 to everything while set
    _seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def delivered(self) -> list[dict]:
        return [r for r in self.received if r["answered"] == 200]


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        event = orjson.loads(body)
        rec._seen[event["id"]] += 1
        status = 500 if rec.failing or rec._seen[event["id"]] <= rec.fail_first.get(event["id"], 0) else 200
        rec.received.append({"body": body, "event": event, "headers": dict(request.headers), "answered": status})
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


def stage_changes(customer: uuid.UUID, stages: list[Stage]) -> list[Envelope]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out, before = [], None
    for i, stage in enumerate(stages):
        out.append(
            Envelope.wrap(
                StageChanged(
                    customer_id=customer, from_stage=before, to_stage=stage, changed_at=start + timedelta(days=i), reason="test"
                ),
                source=SOURCE,
                subject=str(customer),
            )
        )
        before = stage
    return out


async def publish(stack: Stack, events: list[Envelope]) -> None:
    await stack.app.state.runtime.transport.send_batch(
        [OutgoingMessage(LIFECYCLE_EVENTS, e.to_json(), e.subject.encode()) for e in events]
    )


async def subscribe(stack: Stack, url: str, event_types: list[str], filters: dict | None = None) -> dict:
    async with stack.client() as admin:
        resp = await admin.post("/v1/webhooks", json={"url": url, "event_types": event_types, "filters": filters or {}})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_signed_retried_ordered_and_redelivered(database_url: str) -> None:
    async with (
        receiver() as rec,
        gateway_stack(
            database_url,
            services=(),
            webhook_poll_interval_s=0.05,
            webhook_backoff_base_s=0.05,
            webhook_max_attempts=3,
            webhook_allowed_hosts=LOCAL_RECEIVERS,
        ) as stack,
    ):
        sub = await subscribe(stack, rec.url, ["stage.changed"])
        a, b = uuid.uuid4(), uuid.uuid4()
        path = [Stage.APPROACH, Stage.ACQUISITION, Stage.DEVELOPMENT, Stage.RETENTION, Stage.LOYALTY]
        events_a, events_b = stage_changes(a, path), stage_changes(b, path)
        rec.fail_first = {events_a[0].id: 2, events_b[2].id: 1}  # two 500s, then a 200; one 500, then a 200
        doomed = stage_changes(uuid.uuid4(), [Stage.CHURNED])[0]
        rec.fail_first[doomed.id] = 99  # always 500: failed after max attempts
        await publish(stack, [e for pair in zip(events_a, events_b, strict=True) for e in pair] + [doomed])

        async def all_delivered() -> bool:
            return len(rec.delivered()) == 10 and sum(r["event"]["id"] == doomed.id for r in rec.received) == 3

        await wait_until(all_delivered, timeout=60, message="10 deliveries and 3 failed attempts")

        # Signature: HMAC-SHA256 over "<timestamp>.<body>" with the secret shown at creation.
        for r in rec.received:
            assert verify(sub["secret"], r["headers"][TIMESTAMP_HEADER], r["body"], r["headers"][SIGNATURE_HEADER])
            assert not verify("whsec_wrong", r["headers"][TIMESTAMP_HEADER], r["body"], r["headers"][SIGNATURE_HEADER])
        # Order per customer, although the first event of each was retried.
        for customer, events in ((a, events_a), (b, events_b)):
            got = [r["event"]["id"] for r in rec.delivered() if r["event"]["subject"] == str(customer)]
            assert got == [e.id for e in events]
        assert [r["answered"] for r in rec.received if r["event"]["id"] == events_a[0].id] == [500, 500, 200]

        async with stack.client() as admin:
            log = (await admin.get(f"/v1/webhooks/{sub['id']}/deliveries")).json()["items"]
            assert len(log) == 11
            failed = (await admin.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"status": "failed"})).json()
            [dead] = failed["items"]
            assert dead["event_id"] == doomed.id and dead["attempts"] == 3 and dead["last_status_code"] == 500
            first = next(d for d in log if d["event_id"] == events_a[0].id)
            assert first["status"] == "delivered" and first["attempts"] == 3

            # Manual redelivery: the receiver is fixed now.
            rec.fail_first[doomed.id] = 0
            resp = await admin.post(f"/v1/webhooks/{sub['id']}/deliveries/{dead['id']}/redeliver")
            assert resp.status_code == 202 and resp.json()["status"] == "pending"
            await wait_until(lambda: _answered(rec, doomed.id, 200), timeout=30, message="redelivery")
            again = (await admin.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"status": "failed"})).json()
            assert again["items"] == []
            assert (await admin.post(f"/v1/webhooks/{sub['id']}/deliveries/999999/redeliver")).status_code == 404
            page = (await admin.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"limit": 4})).json()
            rest = (
                await admin.get(f"/v1/webhooks/{sub['id']}/deliveries", params={"limit": 20, "cursor": page["next_cursor"]})
            ).json()
            assert len(page["items"]) + len(rest["items"]) == 11 and rest["next_cursor"] is None


async def _answered(rec: Receiver, event_id: str, status: int) -> bool:
    return any(r["event"]["id"] == event_id and r["answered"] == status for r in rec.received)


async def test_stage_change_only_subscription_through_the_real_services(database_url: str) -> None:
    async with (
        gateway_stack(database_url, webhook_poll_interval_s=0.1, webhook_allowed_hosts=LOCAL_RECEIVERS) as stack,
        receiver() as development,
        receiver() as loyalty,
        receiver() as everything,
    ):
        await subscribe(stack, development.url, ["stage.changed"], {"to_stage": "development"})
        await subscribe(stack, loyalty.url, ["stage.changed"], {"to_stage": ["loyalty", "retention"]})
        await subscribe(stack, everything.url, ["purchase.recorded", "stage.changed", "customer.created"])
        async with stack.client() as admin:
            resp = await admin.post("/v1/events", json=[order_completed("C-9")])
            assert resp.status_code == 200, resp.text

        async def arrived() -> bool:
            return len(development.delivered()) == 1 and len(everything.delivered()) == 3

        await wait_until(arrived, timeout=60, message="the stage change delivered")
        [stage] = development.delivered()
        assert stage["event"]["type"] == "stage.changed" and stage["event"]["data"]["to_stage"] == "development"
        assert sorted(r["event"]["type"] for r in everything.delivered()) == [
            "customer.created",
            "purchase.recorded",
            "stage.changed",
        ]
        await asyncio.sleep(0.5)
        assert loyalty.received == [], "a filter on another stage never fires"


def custom_event(type_: str, subject: str, order_id: str) -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "shop-eu",
        "type": type_,
        "subject": subject,
        "time": "2026-11-01T10:00:00Z",
        "data": {"order_id": order_id},
    }


async def test_custom_event_subscriptions_filtered_by_type_through_the_real_services(database_url: str) -> None:
    """Custom event types reach webhooks as `custom_event.recorded`; a filter on `event_type` picks one type."""
    async with (
        gateway_stack(
            database_url, services=("interaction",), webhook_poll_interval_s=0.1, webhook_allowed_hosts=LOCAL_RECEIVERS
        ) as stack,
        receiver() as shipped,
        receiver() as any_custom,
    ):
        async with stack.client() as admin:
            for name in ("order.shipped", "order.returned"):
                resp = await admin.post(
                    "/v1/event-types",
                    json={
                        "name": name,
                        "schema": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}},
                    },
                )
                assert resp.status_code == 201, resp.text
            by_name = await admin.post("/v1/webhooks", json={"url": shipped.url, "event_types": ["order.shipped"]})
            assert by_name.status_code == 422, by_name.text
            assert (
                'custom_event.recorded: subscribe to it with filters {"event_type": "order.shipped"}' in by_name.json()["detail"]
            )
        await subscribe(stack, shipped.url, ["custom_event.recorded"], {"event_type": "order.shipped"})
        await subscribe(stack, any_custom.url, ["custom_event.recorded"])
        async with stack.client() as admin:
            resp = await admin.post(
                "/v1/events",
                json=[
                    custom_event("order.shipped", "C-7", "A-1"),
                    custom_event("order.returned", "C-7", "A-1"),
                    custom_event("order.shipped", "C-8", "A-2"),
                ],
            )
            assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.text

        async def arrived() -> bool:
            return len(shipped.delivered()) == 2 and len(any_custom.delivered()) == 3

        await wait_until(arrived, timeout=60, message="the custom events delivered")
        assert {
            (r["event"]["type"], r["event"]["data"]["event_type"], r["event"]["data"]["data"]["order_id"])
            for r in shipped.delivered()
        } == {("custom_event.recorded", "order.shipped", "A-1"), ("custom_event.recorded", "order.shipped", "A-2")}
        assert sorted(r["event"]["data"]["event_type"] for r in any_custom.delivered()) == [
            "order.returned",
            "order.shipped",
            "order.shipped",
        ]
        assert {r["headers"]["X-CRM-Event-Type"] for r in any_custom.delivered()} == {"custom_event.recorded"}
        await asyncio.sleep(0.5)
        assert len(shipped.received) == 2, "the returned order never reaches the shipped-only subscription"


async def test_subscription_validation_and_management(stack: Stack) -> None:
    async with stack.client() as admin:
        bad_type = await admin.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "event_types": ["nope"]})
        assert bad_type.status_code == 422
        assert (await admin.post("/v1/webhooks", json={"url": "not a url", "event_types": ["stage.changed"]})).status_code == 422
        created = (
            await admin.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "event_types": ["stage.changed"]})
        ).json()
        assert created["secret"].startswith("whsec_")
        got = (await admin.get(f"/v1/webhooks/{created['id']}")).json()
        assert "secret" not in got
        paused = await admin.patch(f"/v1/webhooks/{created['id']}", json={"active": False})
        assert paused.status_code == 200 and paused.json()["active"] is False
        assert (await admin.get("/v1/webhooks")).json()["items"][0]["id"] == created["id"]
        assert (await admin.delete(f"/v1/webhooks/{created['id']}")).status_code == 204
        assert (await admin.get(f"/v1/webhooks/{created['id']}")).status_code == 404
        assert (await admin.delete(f"/v1/webhooks/{created['id']}")).status_code == 404
