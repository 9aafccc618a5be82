"""Scheme validation: score ranges inside 1–5, unique keys, and every R×F cell covered exactly once."""

from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import DomainError, NotFound

from segmentation.analytics.rfm import coverage_problems
from segmentation.rules.language import InvalidDefinition
from segmentation.schemes import repository
from segmentation.schemes.schemas import SchemeCreate


class SchemeExists(DomainError):
    status, slug, title = 409, "scheme-exists", "Scheme key already taken"


def validate_scheme(body: SchemeCreate) -> list[dict]:
    segments = [s.model_dump() for s in body.segments]
    for s in segments:
        for dim in ("r", "f"):
            low, high = s[dim]
            if not 1 <= low <= high <= 5:
                raise InvalidDefinition(
                    f"segment {s['key']!r}: {dim.upper()} range {[low, high]} must satisfy 1 <= low <= high <= 5"
                )
    keys = [s["key"] for s in segments]
    if len(set(keys)) != len(keys):
        raise InvalidDefinition("segment keys must be unique within a scheme")
    problems = coverage_problems(segments)
    if problems:
        raise InvalidDefinition("a scheme must put every R×F cell in exactly one segment; " + "; ".join(problems))
    return [{**s, "r": list(s["r"]), "f": list(s["f"])} for s in segments]


async def create_scheme(session: AsyncSession, body: SchemeCreate) -> dict:
    segments = validate_scheme(body)
    row = await repository.insert(session, body.key, body.name, body.description, segments)
    if row is None:
        raise SchemeExists(f"a scheme with key {body.key!r} already exists")
    return dict(row)


async def list_schemes(session: AsyncSession) -> list[dict]:
    return [dict(r) for r in await repository.all_schemes(session)]


async def get_scheme_row(session: AsyncSession, key: str) -> dict:
    row = await repository.get(session, key)
    if row is None:
        raise NotFound(f"no RFM scheme with key {key!r}")
    return dict(row)
