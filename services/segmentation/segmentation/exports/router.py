import uuid

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import StreamingResponse

from shared.db import SessionDep
from shared.jobs import JobInProgress
from shared.problems import NotFound, problem_responses

from segmentation.exports import repository
from segmentation.exports.schemas import ExportCreate, ExportRead
from segmentation.exports.service import (
    ExportExecutor,
    ExportNotFound,
    ExportNotReady,
    download_path,
    downloadable,
    get_export,
    progress,
)

router = APIRouter(prefix="/v1/segments/{segment_id}/exports", tags=["segments"])
DOWNLOAD_CHUNKS = 8  # chunks read per short transaction while downloading


def executor(request: Request) -> ExportExecutor:
    return request.app.state.export_executor


def _read(export: dict) -> ExportRead:
    return ExportRead.model_validate({**export, "progress": progress(export), "download": download_path(export)})


@router.post("", response_model=ExportRead, status_code=202, responses=problem_responses(NotFound, JobInProgress))
async def create_export(
    segment_id: uuid.UUID,
    body: ExportCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    background: BackgroundTasks,
) -> ExportRead:
    """Export the segment's members or history as a job, for segments too large to stream in one request: poll
    the export (`progress`), then download its CSV. One unfinished export per segment and kind (409 naming it)."""
    export = await executor(request).create(session, segment_id, body.kind)
    # Launched once the transaction has committed (the session commits before the response is sent).
    background.add_task(executor(request).launch_committed, export["export_id"])
    response.headers["Location"] = f"/v1/segments/{segment_id}/exports/{export['export_id']}"
    return _read(export)


@router.get("/{export_id}", response_model=ExportRead, responses=problem_responses(ExportNotFound))
async def read_export(segment_id: uuid.UUID, export_id: uuid.UUID, session: SessionDep) -> ExportRead:
    """An export: status and progress (rows written of the rows counted at its start)."""
    return _read(await get_export(session, segment_id, export_id))


@router.get(
    "/{export_id}/download",
    response_class=StreamingResponse,
    responses={
        **problem_responses(ExportNotFound, ExportNotReady),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The export's CSV (RFC 4180)."},
    },
)
async def download_export(
    segment_id: uuid.UUID, export_id: uuid.UUID, request: Request, session: SessionDep
) -> StreamingResponse:
    """The finished export's CSV: the same columns and escaping as the streamed export (409 until succeeded)."""
    export = await downloadable(session, segment_id, export_id)
    factory = request.app.state.session_factory

    async def body():
        after = -1
        while True:
            async with factory() as s:
                rows = await repository.chunks(s, export_id, after, DOWNLOAD_CHUNKS)
            if not rows:
                return
            for row in rows:
                yield bytes(row.data)
            after = rows[-1].chunk_no

    filename = f"segment-{segment_id}-{export['kind']}-{export_id}.csv"
    return StreamingResponse(
        body(), media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
