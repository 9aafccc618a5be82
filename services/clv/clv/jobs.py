"""Long jobs (fits, scoring runs) run as tasks of the service process; their rows carry status and progress.

They are launched and held by the runtime (`runtime.jobs`, shared/jobs.Launcher), which lets them finish at
shutdown before the engine they write with is disposed. With several replicas a job runs on the one that
claims it (see `shared/jobs.py`). The recovery loop of every replica looks for jobs whose replica died (lease
lapsed) or that were queued but never launched, and runs them again from the start: both kinds are
restartable (a fit only reads; a scoring run writes its values, events and status in one transaction).
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine

import sqlalchemy as sa
from fastapi import FastAPI

from shared import jobs as shared_jobs
from shared.service import ServiceRuntime

from clv.settings import ClvSettings

log = logging.getLogger(__name__)


def launch(app: FastAPI, job: Coroutine, name: str) -> asyncio.Task:
    """Start `job` in the background, held by the service's runtime."""
    return app.state.runtime.jobs.launch(job, name)


async def wait_for_jobs(app: FastAPI) -> None:
    """Until the launched jobs have finished (tests)."""
    await app.state.runtime.jobs.wait()


async def recover_once(runtime: ServiceRuntime, settings: ClvSettings) -> int:
    """Relaunch the jobs other (dead) replicas left; returns how many this replica took over."""
    from clv.fits.models import model_fit
    from clv.fits.service import run_fit
    from clv.scoring.models import scoring_run
    from clv.scoring.service import run_scoring

    kinds: list[tuple[sa.Table, Callable[[uuid.UUID], Coroutine]]] = [
        (model_fit, lambda i: run_fit(runtime.session_factory, i)),
        (scoring_run, lambda i: run_scoring(runtime.session_factory, runtime.outbox, settings, i)),
    ]
    taken = 0
    for table, run in kinds:
        async with runtime.session_factory() as session:
            ids = await shared_jobs.expired(session, table, queued_for_s=settings.job_lease_s)
        for job_id, _ in ids:
            log.warning("resuming %s %s: its replica stopped", table.name, job_id)
            runtime.jobs.launch(run(job_id), name=f"{table.name}-{job_id}")
            taken += 1
    return taken


async def recover_loop(runtime: ServiceRuntime, settings: ClvSettings) -> None:
    """Every third of a lease: take over what dead replicas left (runs until the runtime cancels it)."""
    while True:
        try:
            await recover_once(runtime, settings)
        except Exception:  # the next round retries (e.g. the database was restarting)
            log.exception("job recovery round failed")
        await asyncio.sleep(settings.job_lease_s / 3)
