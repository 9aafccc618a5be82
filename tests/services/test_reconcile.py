"""`reconcile`: drift made by editing a copy in the database is reported (listed), `--repair` restores the owner's
state with its version, and a second pass finds nothing. The owners answer over real HTTP."""

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import sqlalchemy as sa

from deploy.local.ports import free_port
from shared.contracts.envelope import Envelope
from shared.contracts.lifecycle import StageChanged
from shared.db import make_engine, make_session_factory
from shared.messaging.inbox import ConsumedEvent
from shared.messaging.inprocess import InProcessTransport
from tests.e2e.processes import process_env
from tests.services.gateway.conftest import served
from tests.services.lifecycle.conftest import consumed, days_ago, purchase
from tests.services.segmentation.helpers import Feeder
from tests.services.test_copies_follow_owners import published

import clv.app
import lifecycle.app
from clv.propositions import reconcile as clv_reconcile
from clv.propositions.projection import apply_targeting_events
from clv.settings import ClvSettings
from lifecycle.settings import LifecycleSettings
from lifecycle.stages import reconcile as lifecycle_reconcile
from lifecycle.stages.projection import facts_subscription
from segmentation.profiles import reconcile as segmentation_reconcile
from segmentation.settings import SegmentationSettings


@contextlib.asynccontextmanager
async def owners(database_url: str) -> AsyncIterator[dict]:
    """lifecycle and clv served on loopback ports (no workers: the test moves the events by hand)."""
    common = {"database_url": database_url, "transport": "inprocess", "run_workers": False}
    ports = {"lifecycle": free_port(), "clv": free_port()}
    lc_app = lifecycle.app.create_app(LifecycleSettings(**common, sweep_interval_s=0), InProcessTransport())
    clv_app = clv.app.create_app(ClvSettings(**common), InProcessTransport())
    async with served(lc_app, ports["lifecycle"]), served(clv_app, ports["clv"]):
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

            seg_settings = SegmentationSettings(database_url=database_url, lifecycle_url=o["lifecycle_url"], clv_url=o["clv_url"])
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
