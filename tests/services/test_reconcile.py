"""`reconcile`: drift made by editing a copy in the database is reported (listed), `--repair` restores the owner's
state with its version, and a second pass finds nothing. The owners answer over real HTTP."""

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import sqlalchemy as sa

from deploy.local.ports import free_port
from shared.contracts.envelope import Envelope
from shared.contracts.interaction import CustomerMerged, CustomerUpdated
from shared.contracts.lifecycle import StageChanged
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.inprocess import InProcessTransport
from shared.reconcile import reconcile
from tests.e2e.processes import process_env
from tests.services.gateway.conftest import served
from tests.services.interaction.conftest import customer_of
from tests.services.interaction.events import identified
from tests.services.lifecycle.conftest import consumed, days_ago, purchase
from tests.services.segmentation.helpers import Feeder
from tests.services.test_copies_follow_owners import published
from tests.support import InternalToken

import clv.app
import lifecycle.app
from clv.propositions import reconcile as clv_reconcile
from clv.propositions.projection import apply_targeting_events
from clv.settings import ClvSettings
from interaction.app import create_app as create_interaction
from interaction.settings import InteractionSettings
from lifecycle.settings import LifecycleSettings
from lifecycle.stages import reconcile as lifecycle_reconcile
from lifecycle.stages.projection import facts_subscription
from segmentation.profiles import reconcile as segmentation_reconcile
from segmentation.settings import SegmentationSettings


@contextlib.asynccontextmanager
async def owners(database_url: str) -> AsyncIterator[dict]:
    """lifecycle, clv and interaction served on loopback ports (no workers: the test moves the events by hand)."""
    common = {"database_url": database_url, "transport": "inprocess", "run_workers": False}
    ports = {"lifecycle": free_port(), "clv": free_port(), "interaction": free_port()}
    lc_app = lifecycle.app.create_app(LifecycleSettings(**common, sweep_interval_s=0), InProcessTransport())
    clv_app = clv.app.create_app(ClvSettings(**common), InProcessTransport())
    interaction_app = create_interaction(InteractionSettings(**common))
    async with (
        served(lc_app, ports["lifecycle"]),
        served(clv_app, ports["clv"]),
        served(interaction_app, ports["interaction"]),
    ):
        yield {"lifecycle_app": lc_app, **{f"{n}_url": f"http://127.0.0.1:{p}" for n, p in ports.items()}}


async def test_reconcile_reports_drift_and_repair_restores_the_owners_state(database_url):
    engine = make_engine(database_url, pool_size=4)
    sessions = make_session_factory(engine)
    feeder = Feeder(database_url)
    try:
        async with owners(database_url) as o:
            lc_runtime = o["lifecycle_app"].state.runtime
            customers = [uuid.uuid4() for _ in range(6)]
            async with lc_runtime.session_factory.begin() as session:
                await facts_subscription(lc_runtime.outbox).handler(
                    session, [consumed(purchase(c, days_ago(30 + i))) for i, c in enumerate(customers)]
                )
            events = await published(lc_runtime.session_factory, "lifecycle", StageChanged)
            await feeder.apply([p for _, p in events])
            async with sessions.begin() as session:
                await apply_targeting_events(session, [ConsumedEvent(e, p, None) for e, p in events])  # type: ignore[arg-type]

            seg_settings = SegmentationSettings(
                database_url=database_url,
                lifecycle_url=o["lifecycle_url"],
                clv_url=o["clv_url"],
                interaction_url=o["interaction_url"],
            )
            clv_settings = ClvSettings(database_url=database_url, lifecycle_url=o["lifecycle_url"])
            lines: list[str] = []
            assert await segmentation_reconcile.run(seg_settings, repair=False) == []
            assert await clv_reconcile.run(clv_settings, repair=False) == []

            # Drift: a stage edited, a stage copied for a customer lifecycle does not know, a copy row lost.
            edited, stranger, lost = customers[0], uuid.uuid4(), customers[1]
            async with sessions.begin() as session:
                await session.execute(
                    sa.text("UPDATE segmentation.customer_aggregate SET stage = 'churned' WHERE customer_id = :c"), {"c": edited}
                )
                await session.execute(
                    sa.text(
                        "INSERT INTO segmentation.customer_aggregate (customer_id, stage, "
                        "stage_version) VALUES (:c, 'loyalty', 1)"
                    ),
                    {"c": stranger},
                )
                await session.execute(sa.text("DELETE FROM clv.customer_stage WHERE customer_id = :c"), {"c": lost})
                await session.execute(
                    sa.text(
                        "INSERT INTO clv.customer_stage (customer_id, stage, changed_at, version) "
                        "VALUES (:c, 'loyalty', now(), 1)"
                    ),
                    {"c": stranger},
                )
            async with lc_runtime.session_factory() as session:
                version = (
                    await session.execute(
                        sa.text("SELECT version FROM lifecycle.customer_stage WHERE customer_id = :c"), {"c": edited}
                    )
                ).scalar()

            drifts = await segmentation_reconcile.run(seg_settings, repair=False)
            assert {(d.customer_id, d.copy, d.owner) for d in drifts} == {
                (edited, ("churned", version), ("development", version)),
                (stranger, ("loyalty", 1), None),
            }
            assert {(d.customer_id, d.copy) for d in await clv_reconcile.run(clv_settings, repair=False)} == {
                (lost, None),
                (stranger, ("loyalty", 1)),
            }

            assert len(await segmentation_reconcile.run(seg_settings, repair=True)) == 2
            assert len(await clv_reconcile.run(clv_settings, repair=True)) == 2
            assert await segmentation_reconcile.run(seg_settings, repair=False) == []
            assert await clv_reconcile.run(clv_settings, repair=False) == []
            async with sessions() as session:
                stage = (
                    await session.execute(
                        sa.text("SELECT stage, stage_version FROM segmentation.customer_aggregate WHERE customer_id = :c"),
                        {"c": edited},
                    )
                ).one()
                assert tuple(stage) == ("development", version)
                cleared = (
                    await session.execute(
                        sa.text("SELECT stage, stage_version FROM segmentation.customer_aggregate WHERE customer_id = :c"),
                        {"c": stranger},
                    )
                ).one()
                # Cleared, with the version it held kept: the stage that version gave, arriving late (redelivered),
                # does not come back (it did when the clear dropped the version).
                assert tuple(cleared) == (None, 1)
                assert (
                    await session.execute(sa.text("SELECT stage FROM clv.customer_stage WHERE customer_id = :c"), {"c": lost})
                ).scalar() == "development"
            late = StageChanged(
                customer_id=stranger, from_stage=None, to_stage="loyalty", changed_at=datetime.now(UTC), reason="r", version=1
            )
            await feeder.apply([late])
            async with sessions.begin() as session:
                await apply_targeting_events(
                    session, [ConsumedEvent(Envelope.wrap(late, source="/services/lifecycle", subject=str(stranger)), late, None)]
                )  # type: ignore[arg-type]
            assert await segmentation_reconcile.run(seg_settings, repair=False) == []
            assert await clv_reconcile.run(clv_settings, repair=False) == []

            # lifecycle's copy of clv's value (the value facts the rules read): a value clv holds that lifecycle
            # never heard of (its event lost) is reported, and the repair adds it as a fact and re-derives.
            async with sessions.begin() as session:
                await session.execute(
                    sa.text("""
                    INSERT INTO clv.customer_value (customer_id, currency, scoring_run_id, fit_id, probability_alive,
                        expected_purchases, expected_spend, historical_value, current_value, potential_value, clv,
                        tier, scored_at, version)
                    VALUES (:c, 'EUR', :r, :r, 0.05, 0.1, 10, 10, 1, 1, 2, 'bronze', :at,
                            nextval('clv.value_version_seq'))"""),
                    {"c": edited, "r": uuid.uuid4(), "at": datetime.now(UTC)},
                )
            lc_settings = LifecycleSettings(database_url=database_url, clv_url=o["clv_url"])
            [drift] = await lifecycle_reconcile.run(lc_settings, repair=False)
            assert drift.customer_id == edited and drift.copy is None and drift.owner[0] == "bronze"
            assert len(await lifecycle_reconcile.run(lc_settings, repair=True)) == 1
            assert await lifecycle_reconcile.run(lc_settings, repair=False) == []
            async with lc_runtime.session_factory() as session:
                stage = (
                    await session.execute(
                        sa.text("SELECT stage FROM lifecycle.customer_stage WHERE customer_id = :c"), {"c": edited}
                    )
                ).scalar()
            assert stage == "churned", "p_alive 0.05 churns an active customer: the repaired fact is re-derived"

            # The command itself: exit 1 while drift is left, 0 after --repair; one JSON line per drift.
            async with sessions.begin() as session:
                await session.execute(sa.text("DELETE FROM clv.customer_stage WHERE customer_id = :c"), {"c": lost})
            env = process_env(
                {"CLV_DATABASE_URL": database_url, "CLV_LIFECYCLE_URL": o["lifecycle_url"], "CLV_LOG_JSON": "false"}
            )
            for argv, code in ((["reconcile"], 1), (["reconcile", "--repair"], 0), (["reconcile"], 0)):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "clv", *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
                )
                out, _ = await proc.communicate()
                assert proc.returncode == code, out.decode()
                lines.append(out.decode())
            # Two: the row deleted, and `edited`, churned by lifecycle's repair above (its stage.changed was never
            # delivered to clv in this test).
            assert str(lost) in lines[0] and str(edited) in lines[0] and '"drifted":2' in lines[0]
            assert '"drifted":0' in lines[2]
    finally:
        await feeder.close()
        await engine.dispose()


async def test_reconcile_attribute_copy_against_interactions_profiles(database_url):
    """interaction's profile state route answers what it last published per customer (attributes without PII,
    consent, version); segmentation's attribute copy, fed those events, shows no drift; edited, lost, stray and
    erased-but-kept attributes are reported and repaired to the owner's profile and version, and an older event
    redelivered after the repair changes nothing."""
    port = free_port()
    interaction_app = create_interaction(InteractionSettings(database_url=database_url, transport="inprocess", run_workers=False))
    feeder = Feeder(database_url)
    engine = make_engine(database_url, pool_size=2)
    sessions = make_session_factory(engine)
    try:
        async with (
            served(interaction_app, port),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=InternalToken("interaction")) as client,
        ):
            events = [
                identified("R-1", attributes={"tier": "gold", "visits": 3, "city": "Lyon"}),
                identified("R-2", attributes={"tier": "silver"}, consent={"email": True}),
                identified("R-3", attributes={"vip": True}),
                identified("R-4", attributes={"tier": "bronze"}),
                identified("R-5", time="2026-01-01T00:00:00+00:00"),
            ]
            assert (await client.post("/v1/events", json=events)).status_code == 200
            later = [
                identified("R-1", attributes={"visits": 4}),
                identified("R-2", attributes={"tier": None}),
                identified("R-6", attributes={"tier": "gold", "segment": 2}, time="2026-02-01T00:00:00+00:00"),
            ]
            assert (await client.post("/v1/events", json=later)).status_code == 200
            ids = {s: await customer_of(engine, s) for s in ("R-1", "R-2", "R-3", "R-4", "R-5", "R-6")}
            # R-6 (newer, with a profile) is merged into R-5: a merged-away id is in neither the owner's state nor the
            # copy's check.
            merge = await client.post("/v1/merges", json={"customer_ids": [str(ids["R-5"]), str(ids["R-6"])], "reason": "one"})
            assert merge.status_code == 201, merge.text
            assert merge.json()["survivor_id"] == str(ids["R-5"]), "the oldest survives"
            merged_away = ids["R-6"]

            # The state route is the last profile published per customer, and nothing for a customer with none.
            runtime = interaction_app.state.runtime
            published_events = await published(runtime.session_factory, "interaction", CustomerUpdated)
            last = {p.customer_id: p for _, p in sorted(published_events, key=lambda e: e[1].version or 0)}
            page = (await client.get("/v1/customers/profiles/state")).json()
            states = {uuid.UUID(i["customer_id"]): i for i in page["items"]}
            assert page["next_cursor"] is None and set(states) == set(last) - {merged_away}
            assert set(states) == set(ids.values()) - {merged_away}, "R-5 has a profile since the merge filled it"
            for c, state in states.items():
                assert (state["attributes"], state["consent"], state["version"]) == (
                    last[c].attributes,
                    last[c].consent,
                    last[c].version,
                )
            assert states[ids["R-1"]]["attributes"] == {"tier": "gold", "visits": 4}  # "city" is never published
            one = (await client.get("/v1/customers/profiles/state", params={"customer_id": str(ids["R-3"])})).json()
            assert [i["customer_id"] for i in one["items"]] == [str(ids["R-3"])]

            identity = await published(runtime.session_factory, "interaction", CustomerUpdated, CustomerMerged)
            await feeder.apply([p for _, p in identity])
            settings = SegmentationSettings(
                database_url=database_url, interaction_url=f"http://127.0.0.1:{port}", lifecycle_url="", clv_url=""
            )
            check = [c for c in segmentation_reconcile.checks(settings) if c.owner == "interaction"]
            assert await reconcile(sessions, check, repair=False, out=lambda line: None) == []

            # Drift: attributes edited, lost, held for a customer interaction does not know, and kept for one it erased.
            edited, lost, stranger, erased = ids["R-1"], ids["R-3"], uuid.uuid4(), ids["R-4"]
            assert (await client.post(f"/v1/customers/{erased}/erasure")).status_code == 200
            async with sessions.begin() as session:
                await session.execute(
                    sa.text("""UPDATE segmentation.customer_aggregate SET attributes = '{"tier": "platinum"}'
                               WHERE customer_id = :c"""),
                    {"c": edited},
                )
                await session.execute(
                    sa.text("UPDATE segmentation.customer_aggregate SET attributes = '{}' WHERE customer_id = :c"), {"c": lost}
                )
                await session.execute(
                    sa.text("""INSERT INTO segmentation.customer_aggregate (customer_id, attributes, attributes_version)
                               VALUES (:c, '{"vip": true, "gone": null}', 1)"""),
                    {"c": stranger},
                )
            drifts = await reconcile(sessions, check, repair=False, out=lambda line: None)
            assert {(d.customer_id, orjson.dumps(d.copy), orjson.dumps(d.owner)) for d in drifts} == {
                (edited, b'{"tier":"platinum"}', b'{"tier":"gold","visits":4}'),
                (lost, b"null", b'{"vip":true}'),
                (stranger, b'{"vip":true}', b"null"),
                (erased, b'{"tier":"bronze"}', b"null"),
            }
            assert len(await reconcile(sessions, check, repair=True, out=lambda line: None)) == 4
            assert await reconcile(sessions, check, repair=False, out=lambda line: None) == []

            async def copy(c: uuid.UUID) -> tuple:
                async with sessions() as session:
                    row = await session.execute(
                        sa.text(
                            "SELECT attributes, attributes_version FROM segmentation.customer_aggregate WHERE customer_id = :c"
                        ),
                        {"c": c},
                    )
                    return tuple(row.one())

            assert await copy(edited) == ({"tier": "gold", "visits": 4}, states[edited]["version"])
            assert await copy(lost) == ({"vip": True}, states[lost]["version"])
            assert await copy(stranger) == ({}, 1)  # cleared, keeping the version it held
            # The first profile of `edited`, redelivered late: older than the repaired one, it changes nothing.
            first = min((p for _, p in published_events if p.customer_id == edited), key=lambda p: p.version or 0)
            await feeder.apply([first])
            assert await copy(edited) == ({"tier": "gold", "visits": 4}, states[edited]["version"])
    finally:
        await feeder.close()
        await engine.dispose()
