"""The composed view's copy in the gateway: served from it once fresh, marked stale when an owner is down, and
equal to the owners' reads after late, duplicate and out-of-order input and merges (one truth)."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.db import make_engine
from tests.services.gateway.conftest import Stack, gateway_stack
from tests.services.gateway.test_erasure_everywhere import _drained
from tests.services.interaction.events import order, refund
from tests.support import wait_until

PARTS = ("profile", "segmentation", "value", "lifecycle")
SETTLE_S = 0.5  # short, so the test does not wait long; the rule is the same at the default


def _content(view: dict) -> dict:
    return {k: v for k, v in view.items() if k != "sources"}


async def _complete(admin, cid: str) -> bool:
    view = (await admin.get(f"/v1/customers/{cid}", headers={"Cache-Control": "no-cache"})).json()
    return all(view[p] is not None for p in PARTS)


async def _settled(stack: Stack) -> None:
    engine = make_engine(stack.database_url)
    try:
        await _drained(engine)
    finally:
        await engine.dispose()
    await asyncio.sleep(SETTLE_S)  # the copy's settle window after the last event


async def _copy_equals_owners(admin, cid: str) -> bool:
    view = await _from_copy(admin, cid)
    live = (await admin.get(f"/v1/customers/{cid}", headers={"Cache-Control": "no-cache"})).json()
    return _content(view) == _content(live)


async def _from_copy(admin, cid: str) -> dict:
    """The view as served from the copy: read until every part came from it (the first read may fill it)."""
    for _ in range(3):
        view = (await admin.get(f"/v1/customers/{cid}")).json()
        if all(view["sources"][p]["from_copy"] and not view["sources"][p]["stale"] for p in PARTS):
            return view
    raise AssertionError(f"not served from the copy: {view['sources']}")


async def test_the_view_is_served_from_the_copy_and_stale_but_marked_when_an_owner_is_down(database_url: str) -> None:
    at = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    async with gateway_stack(database_url, view_copy_settle_s=SETTLE_S) as stack, stack.client() as admin:
        assert (await admin.post("/v1/events", json=[order("VC-1", "VC-O-1", "30.00", at=at)])).status_code == 200
        engine = make_engine(database_url)
        async with engine.connect() as conn:
            cid = str(
                (
                    await conn.execute(
                        sa.text("SELECT customer_id FROM interaction.customer_identifier WHERE external_id = 'VC-1'")
                    )
                ).scalar()
            )
        await wait_until(lambda: _complete(admin, cid), message="every part known")
        await _settled(stack)

        view = await _from_copy(admin, cid)
        live = (await admin.get(f"/v1/customers/{cid}", headers={"Cache-Control": "no-cache"})).json()
        assert _content(view) == _content(live)
        assert not any(live["sources"][p]["from_copy"] for p in PARTS)
        for p in PARTS:
            assert datetime.fromisoformat(view["sources"][p]["as_of"]) <= datetime.now(UTC)
        async with engine.connect() as conn:
            stage_version = (
                await conn.execute(sa.text("SELECT version FROM lifecycle.customer_stage WHERE customer_id = :c"), {"c": cid})
            ).scalar()
        await engine.dispose()
        assert view["sources"]["lifecycle"]["version"] == stage_version is not None
        assert view["sources"]["profile"]["version"] is None  # interaction publishes no version

        # Lifecycle goes down; a new order makes every part of the copy older than the customer's last event.
        server = stack.servers["lifecycle"]
        server.should_exit = True
        await wait_until(lambda: _refused(stack.service_urls["lifecycle"]), message="lifecycle down")
        assert (await admin.post("/v1/events", json=[order("VC-1", "VC-O-2", "5.00", at=at)])).status_code == 200

        async def profile_counts_two() -> bool:
            v = (await admin.get(f"/v1/customers/{cid}")).json()
            return v["profile"]["purchase_count"] == 2

        await wait_until(profile_counts_two, message="the new order in the profile")
        stale = (await admin.get(f"/v1/customers/{cid}")).json()
        assert stale["unavailable"] == [], "a part of which a copy is held is served from it"
        assert stale["lifecycle"] == view["lifecycle"]
        # The copy is the one the last read (the no-cache one) filled.
        assert stale["sources"]["lifecycle"] == live["sources"]["lifecycle"] | {"from_copy": True, "stale": True}
        assert stale["sources"]["profile"]["from_copy"] is False


async def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return True
    writer.close()
    return False


async def test_the_copy_equals_the_owners_after_late_duplicate_out_of_order_input_and_merges(database_url: str) -> None:
    rng = random.Random(13)
    now = datetime.now(UTC)
    subjects = [f"OT-{i}" for i in range(8)]
    async with gateway_stack(database_url, view_copy_settle_s=SETTLE_S) as stack, stack.client() as admin:

        def orders(n: int, round_: int) -> list[dict]:
            out = []
            for k in range(n):
                s = rng.choice(subjects)
                when = (now - timedelta(days=rng.uniform(1, 200))).isoformat()  # business time in any order
                out.append(order(s, f"{s}-{round_}-{k}", f"{rng.uniform(5, 300):.2f}", at=when))
            return out

        first = orders(30, 1)
        sent = list(first)
        rng.shuffle(first)
        assert (await admin.post("/v1/events", json=first)).status_code == 200
        ids = await _ids(stack, subjects)
        for cid in ids.values():
            await wait_until(lambda c=cid: _complete(admin, c), message="every part known")
        await _settled(stack)
        for cid in ids.values():  # the copy is filled from the owners now
            await _from_copy(admin, cid)

        # Round two: late orders (old business time), duplicates of round one, refunds, two merges; views are
        # read while it flows, so the copy is filled from the owners' intermediate states.
        late = orders(20, 2) + rng.sample(sent, 10)
        late += [refund(o["subject"], o["data"]["order_id"], "1.00", at=now.isoformat()) for o in rng.sample(first, 4)]
        rng.shuffle(late)
        a, b, c = (ids[s] for s in rng.sample(subjects, 3))
        for i in range(0, len(late), 6):
            assert (await admin.post("/v1/events", json=late[i : i + 6])).status_code == 200
            for cid in rng.sample(list(ids.values()), 3):
                assert (await admin.get(f"/v1/customers/{cid}")).status_code == 200
            if i == 6:
                assert (await admin.post("/v1/merges", json={"customer_ids": [a, b], "reason": "one"})).status_code == 201
            if i == 18:  # a chain: b's survivor is merged away in turn
                merged = await admin.post("/v1/merges", json={"customer_ids": [c, a], "reason": "two"})
                assert merged.status_code == 201, merged.text
        await _settled(stack)

        for cid in ids.values():
            # The copy follows the owners' events: under load the gateway's consumer may still be behind the
            # fixed waits above, so it is given time to converge; one that never does fails here.
            await wait_until(lambda c=cid: _copy_equals_owners(admin, c), timeout=30, message=f"the copy of {cid}")
            view = await _from_copy(admin, cid)
            live = (await admin.get(f"/v1/customers/{cid}", headers={"Cache-Control": "no-cache"})).json()
            assert _content(view) == _content(live), cid
            direct = (await admin.get(f"/v1/customers/{live['customer_id']}/lifecycle")).json()
            assert view["lifecycle"] == direct
        # The chain resolves to one survivor for all three.
        survivors = {(await _from_copy(admin, x))["customer_id"] for x in (a, b, c)}
        assert len(survivors) == 1


async def _ids(stack: Stack, subjects: list[str]) -> dict[str, str]:
    engine = make_engine(stack.database_url)
    try:

        async def all_known() -> bool:
            async with engine.connect() as conn:
                n = (
                    await conn.execute(
                        sa.text("SELECT count(*) FROM interaction.customer_identifier WHERE external_id = ANY(:s)"),
                        {"s": subjects},
                    )
                ).scalar()
            return n == len(subjects)

        await wait_until(all_known, message="customers created")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT external_id, customer_id FROM interaction.customer_identifier WHERE external_id = ANY(:s)"),
                    {"s": subjects},
                )
            ).all()
        return {r.external_id: str(r.customer_id) for r in rows}
    finally:
        await engine.dispose()


async def test_a_segmentation_run_refreshes_the_copied_segmentation_of_every_customer(database_url: str) -> None:
    """A run moves RFM scores (and its run id) also where no membership changes, so no event names the customer:
    the run's `segmentation.run_completed` must make the copied part stale for everyone."""
    at = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    async with gateway_stack(database_url, view_copy_settle_s=SETTLE_S) as stack, stack.client() as admin:
        assert (await admin.post("/v1/events", json=[order("VR-1", "VR-O-1", "30.00", at=at)])).status_code == 200
        engine = make_engine(database_url)
        async with engine.connect() as conn:
            cid = str(
                (
                    await conn.execute(
                        sa.text("SELECT customer_id FROM interaction.customer_identifier WHERE external_id = 'VR-1'")
                    )
                ).scalar()
            )
        await engine.dispose()
        await wait_until(lambda: _complete(admin, cid), message="every part known")

        async def run_rfm() -> str:
            resp = await admin.post("/v1/segmentation/runs", json={"kind": "rfm"})
            assert resp.status_code == 202, resp.text
            run_id = resp.json()["run_id"]

            async def succeeded() -> bool:
                return (await admin.get(f"/v1/segmentation/runs/{run_id}")).json()["status"] == "succeeded"

            await wait_until(succeeded, message="the rfm run")
            return run_id

        first = await run_rfm()
        await _settled(stack)
        view = await _from_copy(admin, cid)
        assert view["segmentation"]["rfm"]["run_id"] == first

        # The same data again: the customer stays in its segment (no membership event), the run id moves.
        second = await run_rfm()
        await _settled(stack)
        after = (await admin.get(f"/v1/customers/{cid}")).json()
        own = (await admin.get(f"/v1/customers/{cid}", headers={"Cache-Control": "no-cache"})).json()
        assert own["segmentation"]["rfm"]["run_id"] == second
        assert after["segmentation"] == own["segmentation"], after["sources"]["segmentation"]
