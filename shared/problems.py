"""RFC 9457 problem details: one renderer for domain errors, validation errors and HTTP errors.

Services raise `DomainError` subclasses (never `HTTPException`); each carries its status and a stable
`type` slug, and this module renders every error the same way as `application/problem+json`.
"""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.validation import printable

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://customer-value-crm.dev/problems/"
log = logging.getLogger(__name__)
# Postgres data exceptions a request value causes (too long, out of range, malformed, unencodable), not a bug of
# ours like division by zero (22012): https://www.postgresql.org/docs/current/errcodes-appendix.html. asyncpg
# raises the bare 22000 when it cannot encode a query argument (a date beyond its range, a lone surrogate).
_INPUT_SQLSTATES = {"22000", "22001", "22003", "22007", "22008", "22009", "22021", "22P02", "22P05"}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class DomainError(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Resource not found"



def problem_response(status: int, title: str, detail: str | None = None, *, slug: str | None = None,
                     instance: str | None = None, headers: dict[str, str] | None = None, **extensions: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(jsonable_encoder(extensions))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an endpoint: documents the problem documents it can return."""
    return {e.status: {"model": Problem, "description": e.title, "content": {PROBLEM_JSON: {}}} for e in errors}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, slug=exc.slug, instance=request.url.path, **exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The location can hold a key the client sent: a lone surrogate in it would fail the response's encoding.
        errors = [{"loc": [printable(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                   "msg": printable(str(e.get("msg"))), "type": e.get("type")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem_response(422, "Request validation failed", detail, slug="validation", instance=request.url.path,
                                errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(exc.status_code, title, detail, instance=request.url.path, headers=getattr(exc, "headers", None))

    @app.exception_handler(DBAPIError)
    async def _data(request: Request, exc: DBAPIError) -> JSONResponse:
        # A backstop: the request models and `shared.validation` keep such values out with a 422 naming the field;
        # one that slips through is still the client's value Postgres cannot take, not an internal error.
        if not _is_input_error(exc):
            return await _unexpected(request, exc)
        log.warning("a request value reached the database and was refused on %s %s: %s", request.method,
                    request.url.path, exc.orig)
        return problem_response(422, "Value cannot be stored", f"a value in the request cannot be stored: "
                                f"{printable(str(exc.orig).split(chr(10))[0])[:300]}", slug="unstorable-value",
                                instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal server error", "an unexpected error occurred; see the service log",
                                slug="internal", instance=request.url.path)


def _is_input_error(exc: DBAPIError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(cause, "sqlstate", None) in _INPUT_SQLSTATES
