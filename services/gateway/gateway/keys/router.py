import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from shared import pagination
from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from gateway.keys import repository
from gateway.keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from gateway.keys.service import InvalidKeyRequest, create_key
from gateway.security.principal import Role

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post(
    "", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED, responses=problem_responses(InvalidKeyRequest)
)
async def create_api_key(body: ApiKeyCreate, session: SessionDep) -> ApiKeyCreated:
    """Create an API key; the response is the only time the key is shown."""
    raw, row = await create_key(
        session,
        name=body.name,
        role=body.role,
        partner_id=body.partner_id,
        expires_at=body.expires_at,
        rate_limit_per_s=body.rate_limit_per_s,
    )
    return ApiKeyCreated(key=raw, **row._mapping)


@router.get("", response_model=ApiKeyPage, responses=problem_responses(pagination.InvalidCursor))
async def list_api_keys(
    session: SessionDep,
    role: Role | None = None,
    include_revoked: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ApiKeyPage:
    """API keys, oldest first, by cursor."""
    after = pagination.decode(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.page(
        session, role=role.value if role else None, include_revoked=include_revoked, after=after, limit=limit + 1
    )
    items = [ApiKeyRead(**r._mapping) for r in rows[:limit]]
    more = len(rows) > limit
    return ApiKeyPage(items=items, next_cursor=pagination.encode(items[-1].created_at, items[-1].id) if more else None)


@router.get("/{key_id}", response_model=ApiKeyRead, responses=problem_responses(NotFound))
async def get_api_key(key_id: uuid.UUID, session: SessionDep) -> ApiKeyRead:
    """One API key's record."""
    row = await repository.by_id(session, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return ApiKeyRead(**row._mapping)


@router.delete("/{key_id}", response_model=ApiKeyRead, responses=problem_responses(NotFound))
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, request: Request) -> ApiKeyRead:
    """Revoke an API key (idempotent): it stops working at once here, within seconds on other replicas."""
    row = await repository.revoke(session, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    request.app.state.keys.forget(key_id)
    return ApiKeyRead(**row._mapping)
