"""Opaque cursors: the sort key of the last item of a page, base64url JSON."""

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson

from shared.problems import DomainError


class InvalidCursor(DomainError):
    status, slug, title = 422, "invalid-cursor", "Invalid cursor"


def encode(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([str(v) if isinstance(v, (uuid.UUID, datetime)) else v
                                                  for v in values])).decode().rstrip("=")


def decode(cursor: str, *types: type) -> tuple:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("wrong shape")
        return tuple(datetime.fromisoformat(v) if t is datetime else t(v) for t, v in zip(types, raw, strict=True))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor(f"cursor is not one this API issued ({type(exc).__name__})") from None
