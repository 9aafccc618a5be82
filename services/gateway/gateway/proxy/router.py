"""Every public route of the services, forwarded unchanged to the service that owns its path prefix.

A partner key may only publish events under its own source: the batch is parsed here and refused with 403
naming the offending items before it reaches the interaction service.
"""

import orjson
from fastapi import APIRouter, Request, Response

from shared.http import CORRELATION_HEADER
from shared.problems import DomainError, NotFound

from gateway.proxy.routing import owner
from gateway.security.principal import PRINCIPAL_SCOPE_KEY, Principal, Role

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MAX_LISTED_ITEMS = 100


class ForeignSource(DomainError):
    status, slug, title = 403, "foreign-source", "Events under another source"


def check_partner_batch(principal: Principal, body: bytes) -> None:
    """Refuses a batch in which any event's `source` is not the partner's own id."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # not JSON: the interaction service answers 400 with the reason
    if not isinstance(items, list):
        return
    offending = [
        {"index": i, "id": item.get("id"), "source": item.get("source")}
        for i, item in enumerate(items) if isinstance(item, dict) and item.get("source") != principal.partner_id
    ]
    if offending:
        raise ForeignSource(
            f"{len(offending)} event(s) are not under your source {principal.partner_id!r}; nothing was accepted",
            items=offending[:MAX_LISTED_ITEMS],
        )


@router.api_route("/v1/{rest:path}", methods=METHODS, include_in_schema=False)
async def forward(request: Request) -> Response:
    path = request.url.path
    service = owner(path)
    if service is None:
        raise NotFound(f"no route {request.method} {path}")
    body = await request.body() if request.method not in ("GET", "HEAD") else None
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if body is not None and principal is not None and principal.role is Role.PARTNER:
        check_partner_batch(principal, body)
    raw_path = request.scope.get("raw_path")
    upstream_path = raw_path.decode("latin-1") if raw_path else path
    resp = await request.app.state.upstreams.request(service, request.method, upstream_path,
                                                     query=request.url.query, body=body, headers=dict(request.headers))
    # The gateway's own middleware sets the correlation id on the response; the service's copy would repeat it.
    headers = {k: v for k, v in resp.headers.items() if k.lower() != CORRELATION_HEADER}
    return Response(resp.body, status_code=resp.status, headers=headers)
