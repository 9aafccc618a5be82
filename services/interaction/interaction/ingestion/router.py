import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared.contracts.envelope import Envelope
from shared.messaging.inbox import is_transient
from shared.problems import DomainError, problem_response, problem_responses
from shared.validation import loads

from interaction.event_types.service import catalogue
from interaction.ingestion.schemas import IngestItemResult, IngestResponse
from interaction.ingestion.service import CheckedBatch, ItemResult, check_http_batch, store_http_batches
from interaction.ingestion.validation import custom_type_names
from interaction.settings import SettingsDep

router = APIRouter(prefix="/v1", tags=["ingestion"])


class MalformedBatch(DomainError):
    status, slug, title = 400, "malformed-batch", "Malformed event batch"


class BatchTooLarge(DomainError):
    status, slug, title = 413, "batch-too-large", "Event batch too large"


class TryAgain(DomainError):
    status, slug, title = 503, "try-again", "Temporarily unable to store the batch"


class EventsRejected(DomainError):
    """Answered as a problem carrying the whole `IngestResponse`: the batch's other events were stored."""

    status, slug, title, members = 422, "events-rejected", "Some events were rejected", IngestResponse


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BatchTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BatchTooLarge(f"body is over the {limit}-byte limit")
    return bytes(body)


@router.post(
    "/events",
    response_model=IngestResponse,
    summary="Ingest a batch of partner events (CloudEvents 1.0, JSON array)",
    responses=problem_responses(
        MalformedBatch,
        BatchTooLarge,
        EventsRejected,
        TryAgain,
        descriptions={
            400: "The body is not a JSON array of events",
            413: "Too many events or too many bytes",
            422: "Some events were rejected; `results` says which and why. The others were stored.",
            503: "The database could not take the batch now (nothing stored); resend it.",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents-batch+json": {"schema": {"type": "array", "items": Envelope.model_json_schema()}},
                "application/json": {"schema": {"type": "array", "items": Envelope.model_json_schema()}},
            },
        }
    },
)
async def ingest_events(request: Request, settings: SettingsDep) -> JSONResponse | IngestResponse:
    """Validates each event; stores valid new ones; reports accepted / duplicate / rejected per item.

    Idempotent on (source, id): a resent event is reported as a duplicate and changes nothing. The answer is
    sent after the commit; concurrent requests may share one transaction (their answers stay their own).
    """
    raw = await _read_body(request, settings.ingest_max_bytes)
    try:
        # A lone surrogate or a number beyond a double parses: the one event holding it is rejected with its
        # reason and the rest of the batch is kept.
        items = loads(raw)
    except ValueError as exc:
        raise MalformedBatch(f"body is not valid JSON (or not UTF-8): {exc}") from None
    if not isinstance(items, list):
        raise MalformedBatch(f"body must be a JSON array of events, got {type(items).__name__}")
    if len(items) > settings.ingest_max_events:
        raise BatchTooLarge(f"{len(items)} events is over the limit of {settings.ingest_max_events} per request")
    if not items:
        raise MalformedBatch("the batch is empty")

    custom = None
    if names := custom_type_names(items):
        # Custom types are validated against the registry's schemas: read once, before any shared transaction.
        async with request.app.state.runtime.session_factory() as session:
            custom = await catalogue(session, names)
    checked = check_http_batch(items, len(raw), custom)
    try:
        results = await _store(request, checked)
    except sa.exc.DBAPIError as exc:
        if not is_transient(exc):
            raise
        # Nothing was stored (the transaction rolls back): resending the same batch is safe.
        raise TryAgain(f"the database could not take the batch ({type(exc.orig).__name__}); resend it") from None
    response = IngestResponse(
        accepted=sum(r.status == "accepted" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        results=[IngestItemResult(index=r.index, status=r.status, id=r.id, reason=r.reason) for r in results],
    )
    if response.rejected:
        first = next(r for r in results if r.status == "rejected")
        return problem_response(
            EventsRejected.status,
            EventsRejected.title,
            f"{response.rejected} of {len(results)} rejected; first: item {first.index}: {first.reason}",
            slug=EventsRejected.slug,
            instance=request.url.path,
            **response.model_dump(mode="json"),
        )
    return response


async def _store(request: Request, checked: CheckedBatch) -> list[ItemResult]:
    """The request's valid events stored: in a group commit shared with concurrent requests (the default), or
    in a transaction of its own (`INTERACTION_INGEST_GROUP_COMMIT=false`)."""
    if not checked.valid:
        return [checked.results[i] for i in range(checked.size)]
    group = request.app.state.ingest_group
    if group is not None:
        return await group.submit(checked, size=len(checked.valid))
    runtime = request.app.state.runtime
    async with runtime.session_factory() as session:
        try:
            results = (await store_http_batches(session, runtime.outbox, [checked]))[0]
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    return results
