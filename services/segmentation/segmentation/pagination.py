"""Opaque cursors for keyset pagination: base64url of the last row's sort key."""

import base64
import json
from typing import Annotated, Any

from fastapi import Query

from shared.problems import DomainError

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]


class InvalidCursor(DomainError):
    status, slug, title = 422, "invalid-cursor", "Invalid cursor"


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode().rstrip("=")


def decode(cursor: str | None, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API returned") from None
    if (not isinstance(key, list) or len(key) != arity or not all(isinstance(k, str | int) for k in key)
            or any(isinstance(k, str) and (len(k) > 100 or "\x00" in k) for k in key)
            or any(isinstance(k, int) and not -2**62 < k < 2**62 for k in key)):
        raise InvalidCursor("the cursor is not one this API returned")
    return key
