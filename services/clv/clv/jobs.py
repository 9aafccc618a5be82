"""Long jobs (fits, scoring runs) run as tasks of the service process; their rows carry status and progress."""

import asyncio
import logging
from collections.abc import Coroutine

from fastapi import FastAPI

log = logging.getLogger(__name__)


def launch(app: FastAPI, job: Coroutine, name: str) -> asyncio.Task:
    """Start `job` in the background and keep a reference until it ends (the loop only holds weak ones)."""
    jobs: set[asyncio.Task] = _jobs(app)
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
