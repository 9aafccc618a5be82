"""One canonical request path, decided before the policy and forwarded as is (security issue, class 1).

The policy decides on the path; the proxy forwards a path; the service routes on a path. If any of those
three read the request line differently (dot segments resolved by the HTTP client, `%2f` decoded by one and
not the other, `//` collapsed), a caller is authorised for one route and reaches another:
`POST /v1/customers/../events` passed the policy as "a customer route" and was sent as `/v1/events`.

So ambiguous spellings are refused outright with 400 problem+json, before authentication: dot segments
(`.`/`..`, also percent-encoded), encoded slashes or backslashes (`%2f`, `%5c`), backslashes, empty segments
(`//`; a single trailing slash is fine), control characters, percent-escapes that are not UTF-8, and
request targets that are not an absolute path. What is left has one meaning; the middleware writes it back
as both `path` and `raw_path` (re-encoded the one way), so the policy, the gateway's own routes and the proxy
all see the same string, and the upstream client sends it without normalising it again.
"""

from urllib.parse import quote, unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.problems import DomainError, problem_response

# RFC 3986 `pchar` minus `%`, plus `/`: what may stay unencoded in a path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_FAST_UNSAFE = (b"%", b"//", b"/.", b"\\")


class UnsafePath(DomainError):
    status, slug, title = 400, "invalid-path", "Invalid request path"


def canonical_path(raw_path: bytes) -> tuple[str, bytes]:
    """(decoded path, its one encoding) or UnsafePath. Unchanged for every path the API documents."""
    if not raw_path.startswith(b"/"):
        raise UnsafePath("the request target must be an absolute path")
    if not any(token in raw_path for token in _FAST_UNSAFE):
        path = raw_path.decode("ascii", "replace")
        _check_characters(path)
        return path, raw_path
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in raw_path:
        raise UnsafePath("encoded slashes and backslashes are not allowed in the path")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath("percent-escapes in the path must encode UTF-8") from None
    _check_characters(path)
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        if segment in (".", ".."):
            raise UnsafePath("dot segments ('.' and '..') are not allowed in the path")
        if segment == "" and i != len(segments) - 1:
            raise UnsafePath("empty path segments ('//') are not allowed")
    return path, quote(path, safe=_PATH_SAFE).encode("ascii")


def _check_characters(path: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise UnsafePath("control characters are not allowed in the path")


class PathGuardMiddleware:
    """Outside the security middleware: nothing decides on a path that has not been made canonical."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        root = scope.get("root_path", "")
        if root and raw.startswith(root.encode()):
            raw = raw[len(root) :]
        try:
            path, encoded = canonical_path(raw)
        except UnsafePath as exc:
            # The instance is the raw target, quoted: the decoded one is what could not be trusted.
            return await problem_response(
                exc.status, exc.title, exc.detail, slug=exc.slug, instance=quote(raw.decode("latin-1"), safe=_PATH_SAFE)
            )(scope, receive, send)
        scope["path"] = root + path
        scope["raw_path"] = root.encode() + encoded
        await self.app(scope, receive, send)
