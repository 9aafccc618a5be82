"""Lifecycle's background work across replicas: the sweep once per interval, a replay run on one replica only, a
dead replica's replay resumed by another once its lease lapsed (a live replica's left alone)."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared import jobs
from tests.services.lifecycle.conftest import days_ago, purchase

from lifecycle.rules import repository as rules_repository


async def test_the_sweep_has_one_turn_per_interval_across_replicas(lc):
    async def turn() -> bool:
        async with lc.runtime.session_factory() as session, session.begin():
            won = await jobs.claim_tick(session, "lifecycle.scheduled_job", "sweep", 3600)
            await asyncio.sleep(0.2)  # the sweep's work, while the other replica's turn waits on the row
            return won

    assert sorted(await asyncio.gather(turn(), turn())) == [False, True]
    assert await turn() is False  # still the same interval
    await _write(lc, "UPDATE lifecycle.scheduled_job SET last_started_at = now() - interval '2 hours'")
    assert await turn() is True


async def _write(lc, statement: str, **params: object) -> None:
    async with lc.runtime.session_factory() as session, session.begin():
        await session.execute(sa.text(statement), params)


async def _left_by(lc, run_id: uuid.UUID, owner: str, lease_until: datetime) -> None:
    await _write(
        lc,
        "UPDATE lifecycle.replay_run SET status = 'running', claimed_by = :owner, lease_until = :lease WHERE id = :id",
        owner=owner,
        lease=lease_until,
        id=run_id,
    )


async def test_a_replay_runs_on_the_replica_that_claims_it_and_a_dead_ones_is_resumed(lc):
    await lc.apply([purchase(uuid.uuid4(), days_ago(5))])
    async with lc.runtime.session_factory() as session, session.begin():
        run_id = await rules_repository.create_run(session, 1)
    replays = lc.client._transport.app.state.replays

    # A live replica holds it: this one does not run it, at start-up or later.
    await _left_by(lc, run_id, "live-replica", datetime.now(UTC) + timedelta(hours=1))
    await replays.resume()
    await replays.launch(run_id)
    await replays.wait()
    [(status, owner)] = await lc.sql("SELECT status, claimed_by FROM lifecycle.replay_run WHERE id = :id", id=run_id)
    assert (status, owner) == ("running", "live-replica")

    # That replica died: once its lease lapsed, this replica's recovery resumes the run from the start.
    await _left_by(lc, run_id, "dead-replica", datetime.now(UTC) - timedelta(seconds=1))
    await replays.resume()
    await replays.wait()
    run = (await lc.client.get(f"/v1/lifecycle/rules/runs/{run_id}")).json()
    assert (run["status"], run["evaluated"]) == ("succeeded", 1), run
    [(owner,)] = await lc.sql("SELECT claimed_by FROM lifecycle.replay_run WHERE id = :id", id=run_id)
    assert owner == jobs.REPLICA
