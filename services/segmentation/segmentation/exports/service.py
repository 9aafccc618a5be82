"""Export jobs: a segment's members or history written to CSV chunk by chunk, each chunk in its own transaction
with the progress it makes, so a poll sees the export advance; the finished file stays in Postgres.

Restart policy: an export only reads, so one whose replica died is run again from the start by whichever replica
claims it once its lease lapsed (its chunks are cleared first), up to MAX_ATTEMPTS attempts; then it fails as
interrupted (an export that takes its replica down each time must not restart for ever).
Retention: the newest KEEP_FINISHED finished exports per segment and kind, and none older than EXPIRE_AFTER_S.
Erasure: an erased customer's segments lose all their exports (profiles/projection.py, ERASE_STATEMENTS).
"""

import asyncio
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import jobs
from shared.csv_stream import encode_rows
from shared.problems import DomainError, NotFound

from segmentation.exports import repository
from segmentation.exports.models import segment_export
from segmentation.segments import csv_rows
from segmentation.segments import repository as segments

log = logging.getLogger(__name__)
CHUNK_ROWS = 5000  # rows per chunk: one transaction and one progress step each
KEEP_FINISHED = 3
EXPIRE_AFTER_S = 24 * 3600.0
MAX_ATTEMPTS = 3


class ExportNotFound(NotFound):
    pass


class ExportNotReady(DomainError):
    status, slug, title = 409, "export-not-ready", "The export has not succeeded"


def progress(export: dict) -> float:
    """Rows written over the rows counted at the start (the segment may move meanwhile: capped at 1)."""
    if export["status"] == "succeeded":
        return 1.0
    total = export.get("rows_total")
    return min(1.0, export["rows_written"] / total) if total else 0.0


def download_path(export: dict) -> str:
    return f"/v1/segments/{export['segment_id']}/exports/{export['export_id']}/download"


async def get_export(session: AsyncSession, segment_id: uuid.UUID, export_id: uuid.UUID) -> dict:
    export = await repository.get(session, export_id)
    if export is None or export["segment_id"] != segment_id:
        raise ExportNotFound(f"no export {export_id} of segment {segment_id} (finished exports expire)")
    return export


async def downloadable(session: AsyncSession, segment_id: uuid.UUID, export_id: uuid.UUID) -> dict:
    export = await get_export(session, segment_id, export_id)
    if export["status"] != "succeeded":
        raise ExportNotReady(
            f"export {export_id} is {export['status']}: poll it until it has succeeded", export_status=export["status"]
        )
    return export


class _Lost(Exception):
    """This replica no longer holds the export (its lease lapsed and another took it over, or it was erased)."""


class ExportExecutor:
    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], launcher: jobs.Launcher, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self.session_factory = session_factory
        self.jobs = launcher
        self.chunk_rows = chunk_rows

    async def create(self, session: AsyncSession, segment_id: uuid.UUID, kind: str) -> dict:
        """A queued export (launched once the request's transaction committed); one unfinished per segment and
        kind: the partial unique index settles two requests racing (the loser gets 409 too)."""
        await segments.get_segment(session, segment_id)
        running = await repository.unfinished(session, segment_id, kind)
        if running is not None:
            raise jobs.in_progress(f"{kind} export", f"segment {segment_id}", running.export_id, running.status)
        try:
            async with session.begin_nested():
                return await repository.insert(session, segment_id, kind)
        except sa.exc.IntegrityError:
            raise jobs.JobInProgress(f"another {kind} export of segment {segment_id} was created at the same moment") from None

    def launch(self, export_id: uuid.UUID) -> None:
        self.jobs.launch(self.execute(export_id), name=f"segment-export-{export_id}")

    async def launch_committed(self, export_id: uuid.UUID) -> None:
        """`launch` as a response background task."""
        self.launch(export_id)

    async def launch_queued(self) -> None:
        """At start: the exports left queued (whichever replica claims one first runs it)."""
        async with self.session_factory.begin() as session:
            queued = await repository.queued_ids(session)
        for export_id in queued:
            self.launch(export_id)

    async def recover_once(self) -> None:
        """Exports whose replica died are run again from the start (fewer than MAX_ATTEMPTS attempts) or failed
        as interrupted; queued ones nobody launched are launched; finished ones past the retention deleted."""
        relaunch = []
        async with self.session_factory.begin() as session:
            for export_id, status in await jobs.expired(session, segment_export, id_column="export_id"):
                export = await repository.get(session, export_id)
                if status == "running" and export and export["attempts"] >= MAX_ATTEMPTS:
                    if await jobs.fail_interrupted(
                        session,
                        segment_export,
                        export_id,
                        id_column="export_id",
                        reason=f"{jobs.INTERRUPTED} ({MAX_ATTEMPTS} attempts)",
                    ):
                        log.warning("segment export %s failed: interrupted %d times", export_id, MAX_ATTEMPTS)
                else:
                    relaunch.append(export_id)
            expired = await repository.expire(session, EXPIRE_AFTER_S)
        if expired:
            log.info("deleted %d segment exports older than %ss", expired, EXPIRE_AFTER_S)
        for export_id in relaunch:
            self.launch(export_id)

    async def recover_periodically(self) -> None:
        while True:
            try:
                await self.recover_once()
            except Exception:
                log.exception("recovering segment exports failed; trying again")
            await asyncio.sleep(jobs.LEASE_S / 3)

    async def execute(self, export_id: uuid.UUID) -> None:
        async with self.session_factory.begin() as session:
            if not await jobs.claim(session, segment_export, export_id, id_column="export_id"):
                return  # another replica runs it, or it is finished
            claimed = await repository.get(session, export_id)
            if claimed is None:  # cannot be: claimed just now, in this transaction
                return
            kind = claimed["kind"]
            export = await repository.restart(session, export_id, encode_rows([csv_rows.COLUMNS[kind]]))
            await repository.set_total(session, export_id, await csv_rows.count(session, kind, export["segment_id"]))
        try:
            async with jobs.hold(self.session_factory, segment_export, export_id, id_column="export_id"):
                await self._write(export_id, export["segment_id"], kind)
                async with self.session_factory.begin() as session:
                    if await repository.finish(session, export_id, "succeeded"):
                        await repository.prune(session, export["segment_id"], kind, KEEP_FINISHED)
        except asyncio.CancelledError:
            raise  # stopped with its replica: another replica restarts it once the lease lapsed
        except _Lost:
            log.info("segment export %s was taken over or deleted; this replica stops writing it", export_id)
        except Exception as exc:
            log.exception("segment export %s failed", export_id)
            async with self.session_factory.begin() as session:
                await repository.finish(session, export_id, "failed", f"{type(exc).__name__}: {exc}"[:500])

    async def _write(self, export_id: uuid.UUID, segment_id: uuid.UUID, kind: str) -> None:
        after, chunk_no = None, 0
        while True:
            async with self.session_factory.begin() as session:
                cells, after = await csv_rows.read_page(session, kind, segment_id, after, self.chunk_rows)
                if not cells:
                    return
                chunk_no += 1
                if not await repository.append_chunk(session, export_id, chunk_no, len(cells), encode_rows(cells)):
                    raise _Lost()
