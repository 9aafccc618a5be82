"""Every public route of the services, forwarded unchanged to the service that owns its path prefix.

A pure ASGI layer behind the security middleware: a proxied request never enters FastAPI's routing and
dependency machinery (it costs more than the forward itself on this hot path). Paths the gateway serves
itself (the composed view, segment members with contact details, keys, webhooks, docs, health) fall through to the FastAPI app.

A partner key may only publish events under its own source: the batch is parsed here and refused with 403
naming the offending items before it reaches the interaction service. Concurrent event posts of one caller
reach the interaction service as one batch (event_posts.py).
"""

import logging
import re
from types import SimpleNamespace

from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.http import CORRELATION_HEADER
from shared.log import current_correlation_id
from shared.problems import DomainError, problem_response
from shared.validation import loads, printable

from gateway.proxy.event_posts import EventPost, EventPosts
from gateway.proxy.routing import owner
from gateway.security.principal import PRINCIPAL_SCOPE_KEY, Principal, Role
from gateway.upstream import Upstreams

log = logging.getLogger(__name__)
MAX_LISTED_ITEMS = 100
# Routes under a service's prefix that the gateway composes itself (GET and HEAD only).
COMPOSED = re.compile(r"^/v1/customers/[^/]+/?$|^/v1/segments/[^/]+/members/?$")
# Metrics label per service, so proxied routes keep a bounded label set.
_ROUTES = {name: SimpleNamespace(path=f"/v1/* ({name})") for name in ("interaction", "segmentation", "clv", "lifecycle")}
_CORRELATION = CORRELATION_HEADER.encode()
_EVENTS = b"/v1/events"


class Unauthenticated(DomainError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class ForeignItem(BaseModel):
    index: int = Field(description="Position of the event in the posted array.")
    id: str | None = Field(description="The event's id, when it is a string.")
    source: str | None = Field(description="The event's source, when it is a string.")


class ForeignSourceMembers(BaseModel):
    items: list[ForeignItem] = Field(description="The offending events (at most the first 100).")


class ForeignSource(DomainError):
    status, slug, title, members = 403, "foreign-source", "Events under another source", ForeignSourceMembers


def event_items(body: bytes) -> list | None:
    """A posted batch's items; None when it is not a JSON array (the interaction service answers 400)."""
    try:
        # Parsed as the interaction service parses it, or a lone surrogate anywhere would hide the batch from
        # the source check while the service still stores its valid events.
        items = loads(body)
    except ValueError:
        return None
    return items if isinstance(items, list) else None


def check_partner_batch(principal: Principal, items: list | None) -> None:
    """Refuses a batch in which any event's `source` is not the partner's own id."""
    if items is None:
        return
    offending = [
        {"index": i, "id": _echo(item.get("id")), "source": _echo(item.get("source"))}
        for i, item in enumerate(items)
        if isinstance(item, dict) and item.get("source") != principal.partner_id
    ]
    if offending:
        raise ForeignSource(
            f"{len(offending)} event(s) are not under your source {principal.partner_id!r}; nothing was accepted",
            items=offending[:MAX_LISTED_ITEMS],
        )


def _echo(value: object) -> str | None:
    # Only a string is echoed, made encodable: an id of 1e999999 (inf) or "\ud800" would fail the response.
    return printable(value) if isinstance(value, str) else None


class ProxyMiddleware:
    def __init__(self, app: ASGIApp, *, upstreams: Upstreams, event_posts: EventPosts | None = None) -> None:
        self.app = app
        self.upstreams = upstreams
        self.event_posts = event_posts  # None: each event post is forwarded on its own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        service = owner(path)
        if service is None or (method in ("GET", "HEAD") and COMPOSED.match(path)):
            return await self.app(scope, receive, send)
        scope["route"] = _ROUTES.get(service)
        try:
            principal: Principal | None = scope.get(PRINCIPAL_SCOPE_KEY)
            if principal is None:
                # The security middleware authenticates every proxied path; if a change ever let one through
                # unauthenticated, it must not reach a service with the gateway's signature on it.
                raise Unauthenticated("a credential is required")
            body = await _read_body(receive) if method not in ("GET", "HEAD") else None
            raw_path = scope.get("raw_path") or path.encode()
            is_event_post = method == "POST" and raw_path == _EVENTS and not scope.get("query_string")
            items = event_items(body) if body is not None and (is_event_post or principal.role is Role.PARTNER) else None
            if body is not None and principal.role is Role.PARTNER:
                check_partner_batch(principal, items)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if is_event_post and items and self.event_posts is not None:
                assert body is not None
                post = EventPost(body, len(items), headers, current_correlation_id())
                resp = await self.event_posts.send(principal.caller, post)
            else:
                resp = await self.upstreams.request(
                    service,
                    method,
                    raw_path.decode("latin-1"),
                    caller=principal.caller,
                    query=scope.get("query_string", b"").decode("latin-1"),
                    body=body,
                    headers=headers,
                )
        except _ClientGone:
            return  # the client left (or was cut off by the read timeout) mid-body: nothing to forward
        except DomainError as exc:
            return await problem_response(exc.status, exc.title, exc.detail, slug=exc.slug, instance=path, **exc.extensions)(
                scope, receive, send
            )
        except Exception:
            log.exception("proxying %s %s failed", method, path)
            return await problem_response(
                500, "Internal server error", "an unexpected error occurred in the gateway", slug="internal", instance=path
            )(scope, receive, send)
        # The gateway's own middleware sets the correlation id on the response; the service's copy would repeat it.
        out = [(k, v) for k, v in resp.headers if k.lower() != _CORRELATION]
        out.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else resp.body})


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone  # a truncated body is never forwarded as if it were the request
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
