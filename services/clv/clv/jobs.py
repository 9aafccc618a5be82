"""Long jobs (fits, scoring runs) run as tasks of the service process; their rows carry status and progress.

With several replicas a job runs on the one that claims it (see `shared/jobs.py`). The recovery loop of every
replica looks for jobs whose replica died (lease lapsed) or that were queued but never launched, and runs
them again from the start: both kinds are restartable (a fit only reads; a scoring run writes its values,
events and status in one transaction).
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine

from fastapi import FastAPI

from shared import jobs as shared_jobs

log = logging.getLogger(__name__)


def launch(app: FastAPI, job: Coroutine, name: str) -> asyncio.Task:
    """Start `job` in the background and keep a reference until it ends (the loop only holds weak ones)."""
    return launch_on(app.state.runtime, job, name)


def launch_on(runtime, job: Coroutine, name: str) -> asyncio.Task:  # ClvRuntime (import cycle)
    jobs: set[asyncio.Task] = runtime.__dict__.setdefault("jobs", set())
    task = asyncio.create_task(job, name=name)
    jobs.add(task)
    task.add_done_callback(jobs.discard)
    return task


async def wait_for_jobs(app: FastAPI) -> None:
    """Let running jobs finish (used on shutdown and by tests)."""
    jobs = list(_jobs(app))
    if jobs:
        await asyncio.gather(*jobs, return_exceptions=True)


def _jobs(app: FastAPI) -> set[asyncio.Task]:
    # Kept on the runtime, so its shutdown can let running jobs finish before the engine goes away.
    return app.state.runtime.__dict__.setdefault("jobs", set())


async def recover_once(runtime) -> int:  # ClvRuntime (import cycle)
    """Relaunch the jobs other (dead) replicas left; returns how many this replica took over."""
    from clv.fits.models import model_fit
    from clv.fits.service import run_fit
    from clv.scoring.models import scoring_run
    from clv.scoring.service import run_scoring

    kinds: list[tuple[object, Callable[..., Coroutine]]] = [
        (model_fit, lambda i: run_fit(runtime.session_factory, i)),
        (scoring_run, lambda i: run_scoring(runtime.session_factory, runtime.outbox, runtime.settings, i)),
    ]
    taken = 0
    for table, run in kinds:
        async with runtime.session_factory() as session:
            ids = await shared_jobs.expired(session, table, queued_for_s=runtime.settings.job_lease_s)
        for job_id, _ in ids:
            log.warning("resuming %s %s: its replica stopped", table.name, job_id)
            launch_on(runtime, run(job_id), name=f"{table.name}-{job_id}")
            taken += 1
    return taken


async def recover_loop(runtime, stopping: asyncio.Event) -> None:  # ClvRuntime
    interval = runtime.settings.job_lease_s / 3
    while not stopping.is_set():
        try:
            await recover_once(runtime)
        except Exception:  # the next round retries (e.g. the database was restarting)
            log.exception("job recovery round failed")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            pass
