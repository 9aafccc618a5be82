import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from shared import pagination
from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from gateway.webhooks import repository, signing
from gateway.webhooks.destinations import DestinationPolicy, WebhookUrlNotAllowed
from gateway.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookRead,
    WebhookUpdate,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _read(row) -> WebhookRead:
    return WebhookRead(**{k: v for k, v in row._mapping.items() if k != "secret"})


def _checked_url(request: Request, url: object) -> str:
    destinations: DestinationPolicy = request.app.state.webhook_destinations
    destinations.check_url(str(url))
    return str(url)


@router.post(
    "", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED, responses=problem_responses(WebhookUrlNotAllowed)
)
async def create_webhook(body: WebhookCreate, session: SessionDep, request: Request) -> WebhookCreated:
    """Subscribe a URL to domain events; the response is the only time the signing secret is shown.

    The URL must be http(s), without credentials, at most 2048 characters, and reach a public address."""
    row = await repository.insert_subscription(
        session,
        {
            "id": uuid.uuid4(),
            "url": _checked_url(request, body.url),
            "event_types": body.event_types,
            "filters": body.filters,
            "description": body.description,
            "secret": signing.new_secret(),
        },
    )
    return WebhookCreated(secret=row.secret, **_read(row).model_dump())


@router.get("", response_model=WebhookPage, responses=problem_responses(pagination.InvalidCursor))
async def list_webhooks(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> WebhookPage:
    """Webhook subscriptions, oldest first, by cursor."""
    after = pagination.decode(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.subscriptions_page(session, after, limit + 1)
    items = [_read(r) for r in rows[:limit]]
    more = len(rows) > limit
    return WebhookPage(items=items, next_cursor=pagination.encode(items[-1].created_at, items[-1].id) if more else None)


@router.get("/{webhook_id}", response_model=WebhookRead, responses=problem_responses(NotFound))
async def get_webhook(webhook_id: uuid.UUID, session: SessionDep) -> WebhookRead:
    """One webhook subscription."""
    row = await _existing(session, webhook_id)
    return _read(row)


@router.patch("/{webhook_id}", response_model=WebhookRead, responses=problem_responses(NotFound, WebhookUrlNotAllowed))
async def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, session: SessionDep, request: Request) -> WebhookRead:
    """Change a subscription's URL, event types, filters or description, or pause it (`active: false`)."""
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in values:
        values["url"] = _checked_url(request, values["url"])
    row = (
        await repository.update_subscription(session, webhook_id, values)
        if values
        else await repository.subscription(session, webhook_id)
    )
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return _read(row)


@router.delete(
    "/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=problem_responses(NotFound)
)
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep) -> Response:
    """Delete a subscription and its delivery log."""
    if not await repository.delete_subscription(session, webhook_id):
        raise NotFound(f"no webhook {webhook_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryPage, responses=problem_responses(NotFound, pagination.InvalidCursor)
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DeliveryPage:
    """The delivery log of a subscription, newest first."""
    await _existing(session, webhook_id)
    key = pagination.decode(cursor, int)
    before = key[0] if key else None
    rows = await repository.deliveries_page(session, webhook_id, status, before, limit + 1)
    items = [DeliveryRead(**r._mapping) for r in rows[:limit]]
    return DeliveryPage(items=items, next_cursor=pagination.encode(items[-1].id) if len(rows) > limit else None)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(NotFound),
)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep, request: Request
) -> DeliveryRead:
    """Send a delivery again (whatever its status): it is queued now, with a fresh attempt count."""
    row = await repository.redeliver(session, webhook_id, delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id} for webhook {webhook_id}")
    request.app.state.webhook_worker.wake()
    return DeliveryRead(**row._mapping)


async def _existing(session: AsyncSession, webhook_id: uuid.UUID):
    """The subscription, or a 404."""
    row = await repository.subscription(session, webhook_id)
    if row is None:
        raise NotFound(f"no webhook {webhook_id}")
    return row
