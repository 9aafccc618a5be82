"""Opaque cursors for keyset pagination: the sort key of a page's last row, as base64url JSON.

`decode` checks the cursor against the types the endpoint expects and raises `InvalidCursor` (422
problem+json) for anything this API did not hand out, so a forged or truncated cursor never reaches SQL.
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from shared.problems import DomainError

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]


class InvalidCursor(DomainError):
    status, slug, title = 422, "invalid-cursor", "Invalid cursor"


def encode(*values: Any) -> str:
    """The cursor for a row whose sort key is `values` (str, int, UUID or aware datetime)."""
    # default=str covers asyncpg's own UUID class, which orjson does not take for a uuid.UUID.
    return base64.urlsafe_b64encode(orjson.dumps(list(values), default=str)).decode().rstrip("=")


def decode(cursor: str | None, *types: type) -> tuple | None:
    """The sort key in `cursor`, one value per type; None when there is no cursor (the first page)."""
    if cursor is None:
        return None
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("wrong shape")
        return tuple(_parse(t, v) for t, v in zip(types, raw, strict=True))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidCursor("the cursor is not one this API returned") from None


def _parse(kind: type, value: Any) -> Any:
    if kind is int:
        # Bounded so it fits a bigint; bool is an int in Python but never a key here.
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**62) < value < 2**62:
            raise ValueError("not a key integer")
        return value
    if not isinstance(value, str) or len(value) > 200 or "\x00" in value:
        raise ValueError("not a key string")
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None or not 1900 <= parsed.year <= 2200:
            raise ValueError("not a key timestamp")
        return parsed
    return kind(value)
