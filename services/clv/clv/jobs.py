"""Long jobs (fits, scoring runs) run as tasks of the service process; their rows carry status and progress."""

import asyncio
import logging
from collections.abc import Coroutine

from fastapi import FastAPI

log = logging.getLogger(__name__)


def launch(app: FastAPI, job: Coroutine, name: str) -> asyncio.Task:
    """Start `job` in the background and keep a reference until it ends (the loop only holds weak ones)."""
    jobs: set[asyncio.Task] = app.state.__dict__.setdefault("clv_jobs", set())
    task = asyncio.create_task(job, name=name)
    jobs.add(task)
    task.add_done_callback(jobs.discard)
    return task


async def wait_for_jobs(app: FastAPI) -> None:
    """Let running jobs finish (used on shutdown and by tests)."""
    jobs = list(app.state.__dict__.get("clv_jobs", ()))
    if jobs:
        await asyncio.gather(*jobs, return_exceptions=True)
