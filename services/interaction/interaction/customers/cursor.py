"""Opaque cursors: the sort key of the last item, base64url-encoded JSON."""

import base64

import orjson

from shared.problems import DomainError


class InvalidCursor(DomainError):
    status, slug, title = 422, "invalid-cursor", "Invalid cursor"


def encode(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([str(v) for v in values])).decode().rstrip("=")


def decode(cursor: str, size: int) -> list[str]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidCursor("the cursor is not one this API returned") from None
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) and "\x00" not in v
                                                                       for v in values):
        raise InvalidCursor("the cursor is not one this API returned")
    return values
