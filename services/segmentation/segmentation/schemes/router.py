from typing import Annotated

from fastapi import APIRouter, Path

from shared.db import SessionDep
from shared.problems import NotFound, problem_responses

from segmentation.rules.language import InvalidDefinition
from segmentation.schemes.schemas import SchemeCreate, SchemePage, SchemeRead
from segmentation.schemes.service import SchemeExists, create_scheme, get_scheme_row, list_schemes

router = APIRouter(prefix="/v1/segmentation/schemes", tags=["schemes"])
SchemeKey = Annotated[str, Path(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$")]


@router.get("", response_model=SchemePage)
async def get_schemes(session: SessionDep) -> SchemePage:
    """RFM schemes: the built-in default and the ones users created."""
    return SchemePage(items=[SchemeRead.model_validate(r) for r in await list_schemes(session)])


@router.post("", response_model=SchemeRead, status_code=201, responses=problem_responses(InvalidDefinition, SchemeExists))
async def post_scheme(body: SchemeCreate, session: SessionDep) -> SchemeRead:
    """Create a scheme; it must put every R×F cell (1–5 × 1–5) in exactly one segment (422 says which not)."""
    return SchemeRead.model_validate(await create_scheme(session, body))


@router.get("/{key}", response_model=SchemeRead, responses=problem_responses(NotFound))
async def get_scheme(key: SchemeKey, session: SessionDep) -> SchemeRead:
    """One scheme by key."""
    return SchemeRead.model_validate(await get_scheme_row(session, key))
