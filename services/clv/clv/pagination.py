"""Opaque cursors for keyset pagination: the last row's sort key, base64-encoded."""

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from shared.problems import DomainError


class InvalidCursor(DomainError):
    status, slug, title = 422, "invalid-cursor", "Invalid cursor"


LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size.")]
CursorQuery = Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")]


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API issued") from None
