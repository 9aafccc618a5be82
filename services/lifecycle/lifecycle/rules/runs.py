"""Replay runs: every customer re-derived through a rule-set version, chunk by chunk, progress kept on the run.

Saving or re-activating a rule set starts one; it runs as a task of the service process, each chunk of
customers in its own transaction (short locks, visible progress). A newer run supersedes an unfinished older
one: the older stops at its next chunk (its run row is locked per chunk, so no older chunk can land after
the newer run has passed). With several replicas a run executes on the one that claims it (a lease, see
shared/jobs.py); a run whose replica died is resumed from the start by another once the lease lapsed
(re-deriving is idempotent), found by each replica's recovery loop.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from shared import jobs
from shared.service import ServiceRuntime

from lifecycle.rules import repository
from lifecycle.rules.models import replay_run
from lifecycle.stages import service as stages
from lifecycle.stages.schemas import result_of

log = logging.getLogger(__name__)


class Runner:
    """Executes replay runs as jobs of this process (held by the runtime, cancelled at shutdown)."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    async def launch(self, run_id: uuid.UUID) -> None:
        """Start the run as a task of this process (async: BackgroundTasks then calls it on the event loop)."""
        self.runtime.jobs.launch(self._execute(run_id), name=f"replay-{run_id}")

    async def resume(self) -> None:
        """Launch the unfinished runs nobody holds (queued ones, and those whose replica died)."""
        async with self.runtime.session_factory() as session:
            ids = (
                (
                    await session.execute(
                        sa.select(replay_run.c.id)
                        .where(
                            replay_run.c.status.in_(repository.UNFINISHED),
                            sa.or_(replay_run.c.lease_until.is_(None), replay_run.c.lease_until < sa.func.now()),
                        )
                        .order_by(replay_run.c.created_at)
                    )
                )
                .scalars()
                .all()
            )
        for run_id in ids:
            await self.launch(run_id)

    async def recover_periodically(self) -> None:
        while True:
            await asyncio.sleep(jobs.LEASE_S / 3)
            try:
                await self.resume()
            except Exception:  # the next round retries (e.g. the database was restarting)
                log.exception("resuming replay runs failed")

    async def wait(self) -> None:
        """Until every launched run has finished (tests, shutdown)."""
        await self.runtime.jobs.wait()

    async def _execute(self, run_id: uuid.UUID) -> None:
        factory = self.runtime.session_factory
        try:
            async with factory() as session, session.begin():
                if not await jobs.claim(session, replay_run, run_id):
                    return  # finished, superseded, or another replica runs it
                run = await repository.get_run(session, run_id)
                rules = await repository.get(session, run["rule_set_version"]) if run is not None else None
                if rules is None:  # the claimed run and its version (a foreign key) exist: recorded as failed if not
                    raise LookupError(f"replay run {run_id} or its rule set is gone")
                await session.execute(
                    sa.update(replay_run)
                    .where(replay_run.c.id == run_id)
                    .values(started_at=datetime.now(UTC), evaluated=0, moves=[], updated_at=sa.func.now())
                )
            async with jobs.hold(factory, replay_run, run_id):
                await self._chunks(run_id, rules)
        except asyncio.CancelledError:
            raise  # shutdown: the run stays unfinished and is resumed once its lease lapses
        except Exception as exc:  # recorded on the run for whoever started it
            log.exception("replay run %s failed", run_id)
            async with factory() as session, session.begin():
                await session.execute(
                    sa.update(replay_run)
                    .where(replay_run.c.id == run_id)
                    .values(
                        status="failed",
                        error=f"{type(exc).__name__}: {exc}"[:2000],
                        finished_at=datetime.now(UTC),
                        updated_at=sa.func.now(),
                    )
                )

    async def _chunks(self, run_id: uuid.UUID, rules: repository.RuleSetVersion) -> None:
        factory = self.runtime.session_factory
        total = stages.Outcome()
        after = uuid.UUID(int=0)
        while True:
            async with factory() as session, session.begin():
                row = (
                    await session.execute(
                        sa.select(replay_run.c.status, replay_run.c.claimed_by).where(replay_run.c.id == run_id).with_for_update()
                    )
                ).one()
                if row.status != "running" or row.claimed_by != jobs.REPLICA:
                    return  # superseded by a newer run, or taken over after this replica stalled
                chunk = await stages.customer_chunk(session, after)
                if not chunk:
                    await session.execute(
                        sa.update(replay_run)
                        .where(replay_run.c.id == run_id)
                        .values(status="succeeded", finished_at=datetime.now(UTC), updated_at=sa.func.now())
                    )
                    return
                total.add(await stages.rederive(session, self.runtime.outbox, chunk, rules=rules))
                result = result_of(total)
                await session.execute(
                    sa.update(replay_run)
                    .where(replay_run.c.id == run_id)
                    .values(
                        evaluated=total.evaluated,
                        updated_at=sa.func.now(),
                        moves=orjson.loads(orjson.dumps([m.model_dump(mode="json") for m in result.moves])),
                    )
                )
            after = chunk[-1]
