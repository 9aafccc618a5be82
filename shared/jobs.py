"""Jobs as rows that run once across replicas: claimed with a lease, kept alive by a heartbeat, recovered when
the replica running them dies.

Plumbing only (the services keep what a job does). A job table has `status` (queued | running | succeeded |
failed), `claimed_by` and `lease_until`, and a partial unique index on its target `WHERE status IN ('queued',
'running')` so that at most one job per kind and target is unfinished; creating another raises
`JobInProgress` (409 problem+json naming the unfinished job).

- `claim` moves a job to running for this replica, if it is queued or its lease expired (one UPDATE: two
  replicas cannot both win).
- `Lease.hold` renews the lease while the job runs; if the lease was lost (another replica took the job
  over after a stall) the job's own updates are skipped by `owned_by`.
- `expired` lists the jobs a dead replica left (running, lease in the past) and the queued ones nobody
  launched; the service's reaper applies its restart policy: resume (claim and run again from the start,
  for jobs that are idempotent) or `fail_interrupted`.
- `wait_finished` polls until jobs leave queued/running (tests, benchmarks).
"""

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.problems import DomainError

UNFINISHED = ("queued", "running")
LEASE_S = 30.0  # the process's lease length; a service sets it from its settings (`configure`)
INTERRUPTED = "interrupted: the replica running it stopped"


def replica_id() -> str:
    """This process, as it signs its claims: host, pid and a random part (a restarted pid is another replica)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


REPLICA = replica_id()


def configure(lease_s: float) -> None:
    """This process's lease length: a dead replica's jobs are taken over this long after its last heartbeat."""
    global LEASE_S  # one setting per process, read at each claim
    LEASE_S = lease_s


def _lease(lease_s: float | None) -> float:
    return float(lease_s if lease_s is not None else LEASE_S)


class JobInProgress(DomainError):
    status, slug, title = 409, "job-in-progress", "A job of this kind is already queued or running for this target"


def in_progress(kind: str, target: str, job_id: uuid.UUID | str, status: str) -> JobInProgress:
    return JobInProgress(
        f"{kind} {job_id} for {target} is {status}: wait for it (or poll it) before starting another",
        running_job_id=str(job_id),
        running_job_status=status,
    )


async def claim(
    session: AsyncSession,
    table: sa.Table,
    job_id: uuid.UUID,
    lease_s: float | None = None,
    owner: str = REPLICA,
    id_column: str = "id",
) -> bool:
    """Queued (or running with an expired lease) → running for `owner`; False if another replica holds it."""
    key = table.c[id_column]
    stmt = (
        sa.update(table)
        .where(
            key == job_id,
            sa.or_(
                table.c.status == "queued",
                sa.and_(table.c.status == "running", sa.or_(table.c.lease_until.is_(None), table.c.lease_until < sa.func.now())),
            ),
        )
        .values(
            status="running",
            claimed_by=owner,
            updated_at=sa.func.now(),
            lease_until=sa.func.now() + sa.text(f"interval '{_lease(lease_s)} seconds'"),
        )
        .returning(key)
    )
    return (await session.execute(stmt)).first() is not None


def owned_by(table: sa.Table, owner: str = REPLICA) -> sa.ColumnElement[bool]:
    """Guard for a job's own updates: only while this replica still holds it."""
    return table.c.claimed_by == owner


async def renew(
    session_factory: async_sessionmaker[AsyncSession],
    table: sa.Table,
    job_id: uuid.UUID,
    lease_s: float | None = None,
    owner: str = REPLICA,
    id_column: str = "id",
) -> bool:
    async with session_factory() as session, session.begin():
        row = (
            await session.execute(
                sa.update(table)
                .where(table.c[id_column] == job_id, table.c.status == "running", owned_by(table, owner))
                .values(lease_until=sa.func.now() + sa.text(f"interval '{_lease(lease_s)} seconds'"))
                .returning(table.c[id_column])
            )
        ).first()
    return row is not None


@contextlib.asynccontextmanager
async def hold(
    session_factory: async_sessionmaker[AsyncSession],
    table: sa.Table,
    job_id: uuid.UUID,
    lease_s: float | None = None,
    owner: str = REPLICA,
    id_column: str = "id",
) -> AsyncIterator[None]:
    """Renews the lease every third of it while the body runs (a database outage just skips a renewal)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(_lease(lease_s) / 3)
            with contextlib.suppress(Exception):
                await renew(session_factory, table, job_id, lease_s, owner, id_column)

    task = asyncio.create_task(beat(), name=f"lease-{job_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def expired(
    session: AsyncSession, table: sa.Table, queued_for_s: float | None = None, id_column: str = "id"
) -> list[tuple[uuid.UUID, str]]:
    """Jobs to recover: running with a lapsed lease (their replica died), or queued for longer than
    `queued_for_s` without anyone launching them (their replica died between commit and launch)."""
    key = table.c[id_column]
    stale_queue = sa.func.now() - sa.text(f"interval '{_lease(queued_for_s)} seconds'")
    rows = await session.execute(
        sa.select(key, table.c.status)
        .where(
            sa.or_(
                sa.and_(table.c.status == "running", sa.or_(table.c.lease_until.is_(None), table.c.lease_until < sa.func.now())),
                sa.and_(table.c.status == "queued", table.c.created_at < stale_queue),
            )
        )
        .order_by(table.c.created_at)
    )
    return [(r[0], r[1]) for r in rows]


async def fail_interrupted(
    session: AsyncSession, table: sa.Table, job_id: uuid.UUID, id_column: str = "id", reason: str = INTERRUPTED
) -> bool:
    """The restart policy for jobs that cannot run twice: failed with the reason, if still unclaimed or lapsed."""
    stmt = (
        sa.update(table)
        .where(
            table.c[id_column] == job_id,
            sa.or_(
                table.c.status == "queued",
                sa.and_(table.c.status == "running", sa.or_(table.c.lease_until.is_(None), table.c.lease_until < sa.func.now())),
            ),
        )
        .values(status="failed", error=reason, finished_at=sa.func.now(), updated_at=sa.func.now(), lease_until=None)
        .returning(table.c[id_column])
    )
    return (await session.execute(stmt)).first() is not None


async def wait_finished(
    session_factory: async_sessionmaker[AsyncSession],
    table: sa.Table,
    job_ids: Sequence[uuid.UUID] | None = None,
    timeout_s: float = 120.0,
    id_column: str = "id",
) -> None:
    """Until the given jobs (default: all) are neither queued nor running; TimeoutError names those that are."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with session_factory() as session:
            q = sa.select(table.c[id_column], table.c.status).where(table.c.status.in_(UNFINISHED))
            if job_ids is not None:
                q = q.where(table.c[id_column].in_(list(job_ids)))
            left = (await session.execute(q)).all()
        if not left:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"jobs still unfinished after {timeout_s}s: {[(str(i), s) for i, s in left]}")
        await asyncio.sleep(0.1)


def unfinished_index(table: str, columns: Sequence[str], schema: str) -> sa.TextClause:
    """DDL of the partial unique index allowing one unfinished job per target (used by migrations)."""
    cols = ", ".join(columns)
    return sa.text(
        f"CREATE UNIQUE INDEX uq_{table}_one_unfinished ON {schema}.{table} ({cols}) WHERE status IN ('queued', 'running')"
    )


async def claim_tick(session: AsyncSession, table: str, name: str, interval_s: float) -> bool:
    """A scheduled job's turn, once per interval across replicas: True for the one replica whose transaction moves
    `name`'s last start forward (the others wait on its row lock, then find it fresh). `table` is the service's
    `(name text primary key, last_started_at timestamptz)` table; the turn commits with the caller's work."""
    row = (
        await session.execute(
            sa.text(f"""
        INSERT INTO {table} AS t (name, last_started_at) VALUES (:name, now())
        ON CONFLICT (name) DO UPDATE SET last_started_at = now()
        WHERE t.last_started_at < now() - make_interval(secs => :gap)
        RETURNING name"""),
            {"name": name, "gap": interval_s * 0.9},
        )
    ).first()
    return row is not None


class Launcher:
    """The job tasks this process started (fits, runs, replays): one place keeps them referenced (the event loop
    holds only weak references), lets tests wait for them and stops them at shutdown.

    At stop a job gets `drain_s` to finish, then it is cancelled; what becomes of an unfinished job is its
    service's restart policy (resumed by another replica once its lease lapses, or failed as interrupted)."""

    def __init__(self, drain_s: float = 0.0) -> None:
        self.drain_s = drain_s
        self._tasks: set[asyncio.Task] = set()

    def launch(self, job: Coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        """Until every launched job has finished, including those launched meanwhile (tests, benchmarks)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def stop(self) -> None:
        pending = set(self._tasks)
        if pending and self.drain_s > 0:
            _, pending = await asyncio.wait(pending, timeout=self.drain_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
