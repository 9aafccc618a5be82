"""One OpenAPI document for every public route: the gateway's own plus each service's, fetched over HTTP.

Each service's `/openapi.json` is fetched at startup (retried in the background: the gateway starts even when
a service is down) and refreshed lazily when the merged document is older than `openapi_refresh_s`, or sooner
while a service is missing. Only paths the service owns under the gateway's routing are kept. Component
names stay as they are unless two services define the same name differently; then the later one becomes
`<service>.<Name>` and its references are rewritten. Every operation gets the security requirement and the
problem responses the gateway itself may answer (401, 403, 413, 429, 503), each listing its problem `type`s
and members (shared/problems.py documents the services' own the same way).
"""

import asyncio
import copy
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from shared.problems import DomainError, document_problems, merge_problem_response, problem_response_doc

from gateway.customer_view.schemas import PART_SCHEMAS
from gateway.proxy.router import ForeignSource, Unauthenticated
from gateway.proxy.routing import owner
from gateway.security import policy
from gateway.security.middleware import BodyTooLarge, Forbidden, RateLimited
from gateway.security.paths import UnsafePath
from gateway.segment_members.schemas import SEGMENTATION_MEMBER
from gateway.upstream import Upstreams, UpstreamUnavailable

log = logging.getLogger(__name__)
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
REF_PREFIX = "#/components/schemas/"
GATEWAY_ERRORS: dict[str, tuple[type[DomainError], str]] = {
    "401": (Unauthenticated, "No credential, or an unknown, revoked or expired one"),
    "403": (Forbidden, "The credential's role may not call this route"),
    "429": (RateLimited, "Rate limit exceeded; `Retry-After` says when to try again"),
}


def _walk_refs(node: Any, rename: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(REF_PREFIX) and v[len(REF_PREFIX) :] in rename:
                out[k] = REF_PREFIX + rename[v[len(REF_PREFIX) :]]
            else:
                out[k] = _walk_refs(v, rename)
        return out
    if isinstance(node, list):
        return [_walk_refs(v, rename) for v in node]
    return node


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _params(path: str) -> list[str]:
    return re.findall(r"\{([^}]*)\}", path)


def _rename_path_params(item: dict, rename: dict[str, str]) -> dict:
    if all(a == b for a, b in rename.items()):
        return item
    item = copy.deepcopy(item)
    for op in [item, *(v for v in item.values() if isinstance(v, dict))]:
        for param in op.get("parameters", []) if isinstance(op.get("parameters"), list) else []:
            if isinstance(param, dict) and param.get("in") == "path" and param.get("name") in rename:
                param["name"] = rename[param["name"]]
    return item


def merge(gateway_doc: dict, service_docs: dict[str, dict], *, bearer: bool) -> dict:
    doc = copy.deepcopy(gateway_doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    paths = doc.setdefault("paths", {})
    proxied: set[tuple[str, str]] = set()
    # (path with parameter names blanked, method): `/v1/customers/{id}` and `/v1/customers/{customer_id}` are one.
    taken = {(_shape(path), m) for path, item in paths.items() for m in item if m in HTTP_METHODS}
    for service, sdoc in service_docs.items():
        theirs = sdoc.get("components", {}).get("schemas", {})
        rename: dict[str, str] = {}
        for name, schema in theirs.items():
            if name in schemas and schemas[name] != schema:
                rename[name] = f"{service}.{name}"
        sdoc = _walk_refs(sdoc, rename)
        for name, schema in sdoc.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(rename.get(name, name), schema)
        for path, item in sdoc.get("paths", {}).items():
            if owner(path) != service:
                continue  # health, metrics, or a route outside the service's agreed prefixes: not reachable
            # One spelling per templated path (OpenAPI forbids `/x/{id}` beside `/x/{x_id}`): the first one wins and
            # the later operations' path parameters are renamed by position.
            spelling = next((p for p in paths if _shape(p) == _shape(path)), path)
            rename_params = dict(zip(_params(path), _params(spelling), strict=True))
            path, item = spelling, _rename_path_params(item, rename_params)
            target = paths.setdefault(path, {})
            for method, op in item.items():
                if method not in HTTP_METHODS:
                    target.setdefault(method, op)  # path-level parameters, summary…
                    continue
                if method in target or (_shape(path), method) in taken:
                    continue  # the gateway serves it itself (the composed customer view)
                taken.add((_shape(path), method))
                op = dict(op)
                op["operationId"] = f"{service}__{op.get('operationId', method + path)}"
                op.setdefault("tags", [service])
                target[method] = op
                proxied.add((path, method))
    # The composed view's parts are the owners' schemas: until an owner's document is merged, its part is
    # documented as an object rather than left as a dangling reference.
    for name, service in PART_SCHEMAS.items():
        schemas.setdefault(name, {"type": "object", "description": f"{service}'s part (its document is not merged yet)"})
    schemas.setdefault(
        SEGMENTATION_MEMBER, {"type": "object", "description": "segmentation's member (its document is not merged yet)"}
    )
    _secure(doc, proxied, bearer)
    return doc


def _problems(*errors: type[DomainError], description: str | None = None) -> dict:
    return problem_response_doc(list(errors), description)


def _add(responses: dict, status: str, response: dict) -> None:
    responses[status] = merge_problem_response(responses.get(status), response)


def _secure(doc: dict, proxied: set[tuple[str, str]], bearer: bool) -> None:
    components = doc["components"]
    schemes = {
        "ApiKeyAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (roles admin, frontend, analyst, partner).",
        }
    }
    if bearer:
        schemes["BearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT from the configured identity provider (frontend users).",
        }
    components["securitySchemes"] = schemes
    doc["security"] = [{name: []} for name in schemes]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS or not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            if policy.is_open(method.upper(), path):
                op["security"] = []
                continue
            for status, (error, description) in GATEWAY_ERRORS.items():
                _add(responses, status, _problems(error, description=description))
            if (path, method) == ("/v1/events", "post"):
                _add(responses, "403", _problems(ForeignSource))
            responses["429"].setdefault(
                "headers", {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
            )
            if "requestBody" in op:
                _add(responses, "413", _problems(BodyTooLarge))
            if "{" in path:
                # A path parameter of `..`, `.`, or holding `/` or `\` makes the path ambiguous: refused before the
                # policy (gateway/security/paths.py).
                _add(
                    responses,
                    "400",
                    _problems(
                        UnsafePath, description=("The path is not canonical (dot segments, encoded slashes, empty segments)")
                    ),
                )
            if (path, method) in proxied or path.startswith("/v1/customers/"):
                _add(
                    responses, "503", _problems(UpstreamUnavailable, description=("The service behind this route is unavailable"))
                )
    # Every error of every service is problem+json (shared/problems.py): the documents merged here say so
    # already; this types the gateway's own additions and hoists their member schemas into `components`.
    document_problems(doc)


class OpenApiDocument:
    """The merged document, rebuilt lazily; never blocks on a service that is down."""

    def __init__(
        self,
        gateway_doc: Callable[[], dict],
        upstreams: Upstreams,
        *,
        refresh_s: float,
        bearer: bool,
        fetch_timeout_s: float = 3.0,
    ) -> None:
        self._gateway_doc = gateway_doc
        self._upstreams = upstreams
        self._refresh_s = refresh_s
        self._bearer = bearer
        self._timeout = fetch_timeout_s
        self._service_docs: dict[str, dict] = {}
        self._merged: bytes | None = None
        self._built_at = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    @property
    def missing(self) -> list[str]:
        return [s for s in self._upstreams.urls if s not in self._service_docs]

    async def fetch(self) -> None:
        async def one(service: str) -> None:
            body = await self._upstreams.get_json_or_none(service, "/openapi.json", self._timeout)
            if body is not None:
                try:
                    self._service_docs[service] = orjson.loads(body)
                except orjson.JSONDecodeError:
                    log.warning("%s served an /openapi.json that is not JSON", service)

        await asyncio.gather(*(one(s) for s in self._upstreams.urls))
        ordered = {s: self._service_docs[s] for s in self._upstreams.urls if s in self._service_docs}
        doc = merge(self._gateway_doc(), ordered, bearer=self._bearer)
        if self.missing:
            doc["info"]["x-missing-services"] = self.missing
        self._merged = orjson.dumps(doc)
        self._built_at = time.monotonic()

    def _stale(self) -> bool:
        age = time.monotonic() - self._built_at
        return self._merged is None or age > self._refresh_s or bool(self.missing and age > 5.0)

    async def document(self) -> bytes:
        if self._stale():
            async with self._lock:
                if self._stale():  # another request may have rebuilt it while this one waited
                    await self.fetch()
        assert self._merged is not None
        return self._merged

    def start(self) -> None:
        async def warm() -> None:
            delay = 0.5
            while True:
                try:
                    await self.fetch()
                except Exception:  # the docs must never stop the gateway
                    log.exception("could not build the merged OpenAPI document")
                if not self.missing:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

        self._task = asyncio.create_task(warm(), name="gateway-openapi-warmup")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
