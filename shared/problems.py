"""RFC 9457 problem details: one renderer for domain errors, validation errors and HTTP errors.

Services raise `DomainError` subclasses (never `HTTPException`); each carries its status and a stable
`type` slug, and this module renders every error the same way as `application/problem+json`.
"""

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.validation import printable

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://customer-value-crm.dev/problems/"
REF_PREFIX = "#/components/schemas/"
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
    # The members this problem adds to RFC 9457's (the keyword arguments it is raised with), so the OpenAPI
    # document types them; None: it adds none.
    members: ClassVar[type[BaseModel] | None] = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Resource not found"


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
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


PROBLEM_REF = REF_PREFIX + "Problem"
_COMPONENTS_KEY = "x-problem-components"  # carried by a response until `_document_problems` hoists it


class ValidationErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where the value is: `body`, `query`, `path`, then keys and indexes.")
    msg: str
    type: str | None = Field(None, description="pydantic's error type, e.g. `missing`, `string_too_long`.")


class ValidationMembers(BaseModel):
    errors: list[ValidationErrorItem] = Field(description="Every invalid value of the request, first one in `detail`.")


class RequestInvalid(DomainError):
    """Documentation only: FastAPI's request validation, rendered by `install_problem_handlers`."""

    status, slug, title, members = 422, "validation", "Request validation failed", ValidationMembers


class ValueNotStorable(DomainError):
    """Documentation only: a value Postgres refused (`_data` below); any route taking input can answer it."""

    status, slug, title = 422, "unstorable-value", "Value cannot be stored"


class BodyNotParsed(DomainError):
    """Documentation only: FastAPI's answer to a body it cannot parse as JSON (an HTTPException, `_http` below)."""

    status, slug, title = 400, "", "Bad Request"


def problem_type(error: type[DomainError]) -> str:
    return PROBLEM_TYPE_BASE + error.slug if error.slug else "about:blank"


def problem_responses(*errors: type[DomainError], descriptions: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an endpoint: the problem documents it can return, per status, each listing its `type`s.

    A status's schema is `Problem` narrowed to the listed types, plus the members the errors add (e.g. the
    per-item `results` of a rejected batch). Errors sharing a status are one response."""
    by_status: dict[int, list[type[DomainError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {status: problem_response_doc(group, (descriptions or {}).get(status)) for status, group in by_status.items()}


def problem_response_doc(errors: list[type[DomainError]], description: str | None = None) -> dict[str, Any]:
    """One OpenAPI response for problems of one status."""
    errors = list(dict.fromkeys(errors))
    properties: dict[str, Any] = {"type": {"type": "string", "enum": [problem_type(e) for e in errors]}}
    required: list[str] = ["type"]
    components: dict[str, Any] = {}
    for error in errors:
        if error.members is None:
            continue
        schema = error.members.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        properties.update(schema.get("properties", {}))
        if len(errors) == 1:
            required += schema.get("required", [])
    return {
        "description": description or "; ".join(dict.fromkeys(e.title for e in errors)),
        "content": {
            PROBLEM_JSON: {
                "schema": {"allOf": [{"$ref": PROBLEM_REF}, {"type": "object", "properties": properties, "required": required}]}
            }
        },
        _COMPONENTS_KEY: components,
    }


def merge_problem_response(existing: dict[str, Any] | None, added: dict[str, Any]) -> dict[str, Any]:
    """`existing` (a response for one status) with `added`'s problem types and members too."""
    if not existing:
        return added
    schema = existing.get("content", {}).get(PROBLEM_JSON, {}).get("schema", {})
    ours = added["content"][PROBLEM_JSON]["schema"]["allOf"][1]
    if not (isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 2):
        return existing | {"content": added["content"]}  # untyped so far: take the typed one, keep the description
    theirs = schema["allOf"][1]
    types = theirs["properties"]["type"]["enum"]
    new_types = [t for t in ours["properties"]["type"]["enum"] if t not in types]
    if not new_types:
        return existing
    theirs["properties"] = ours["properties"] | theirs["properties"]
    theirs["properties"]["type"]["enum"] = types + new_types
    theirs["required"] = ["type"]  # members of one type are not there for another
    existing[_COMPONENTS_KEY] = existing.get(_COMPONENTS_KEY, {}) | added.get(_COMPONENTS_KEY, {})
    if added["description"] not in existing.get("description", ""):
        existing["description"] = f"{existing.get('description', '')}; {added['description']}".lstrip("; ")
    return existing


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Every error of an OpenAPI document as the problem+json it is answered with (see `install_problem_handlers`).

    FastAPI documents request validation as a JSON `HTTPValidationError` and puts `model=` responses under
    `application/json`: both become problem+json, the problem schemas' own models are hoisted into
    `components`, and every operation that takes input lists the validation problems under 422."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema())
    for item in document.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            if responses.get("422", {}).get("content", {}).get("application/json") is not None:
                del responses["422"]  # FastAPI's HTTPValidationError: replaced by the problem below
            if op.get("parameters") or op.get("requestBody"):
                responses["422"] = merge_problem_response(
                    responses.get("422"), problem_response_doc([RequestInvalid, ValueNotStorable])
                )
            if op.get("requestBody"):
                responses["400"] = merge_problem_response(
                    responses.get("400"), problem_response_doc([BodyNotParsed], "The body is not valid JSON")
                )
            for status, response in responses.items():
                if str(status)[0] in "45":
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    if not content.get(PROBLEM_JSON, {}).get("schema"):
                        content[PROBLEM_JSON] = {"schema": {"$ref": PROBLEM_REF}}
                for name, schema in response.pop(_COMPONENTS_KEY, {}).items():
                    components.setdefault(name, schema)
    for name in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if f'"{REF_PREFIX}{name}"'.encode() not in orjson.dumps(document):
            components.pop(name, None)
    return document


def install_problem_openapi(app: FastAPI) -> None:
    """The app's `openapi()` documents its errors as `install_problem_handlers` answers them."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    install_problem_openapi(app)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, slug=exc.slug, instance=request.url.path, **exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The location can hold a key the client sent: a lone surrogate in it would fail the response's encoding.
        errors = [
            {
                "loc": [printable(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                "msg": printable(str(e.get("msg"))),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem_response(
            422, "Request validation failed", detail, slug="validation", instance=request.url.path, errors=errors
        )

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
        log.warning(
            "a request value reached the database and was refused on %s %s: %s", request.method, request.url.path, exc.orig
        )
        return problem_response(
            422,
            "Value cannot be stored",
            f"a value in the request cannot be stored: {printable(str(exc.orig).split(chr(10))[0])[:300]}",
            slug="unstorable-value",
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            500,
            "Internal server error",
            "an unexpected error occurred; see the service log",
            slug="internal",
            instance=request.url.path,
        )


def _is_input_error(exc: DBAPIError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(cause, "sqlstate", None) in _INPUT_SQLSTATES
