"""Values every service can store and echo: one check for decoded JSON, and annotated types for typed fields.

What it keeps out, and why each would otherwise be a 500 (or a silent corruption):
- NUL (U+0000): Postgres `text` and `jsonb` cannot hold it.
- Lone surrogates (`"\\ud800"` decodes to a Python str that is not valid Unicode): UTF-8 encoding fails in
  asyncpg, orjson and the JSON response renderer.
- Non-finite numbers (`1e999999` decodes to inf; `NaN`): not JSON; orjson writes them as null.
- Integers beyond 64 bits: orjson cannot encode them.
- Nesting deeper than `MAX_DEPTH`: orjson encodes at most 254 levels, and no document of ours needs 32.
- Instants whose UTC conversion leaves Python's datetime range (`9999-12-31T23:59:59-14:00` is year 10000 in
  UTC): `Instant` bounds them to plausible years, which Postgres `timestamptz` holds too.
"""

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, AwareDatetime, Field
from pydantic.fields import FieldInfo

MAX_DEPTH = 32
# The NUL rule as a pattern, for query, path and body fields: such a value is a 422, not a database error.
NO_NUL = r"^[^\x00]*$"
INT64 = 2**63
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200

Loc = tuple[str | int, ...]


def text_problem(value: str) -> str | None:
    """Why the string cannot be stored, or None."""
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def _shown(key: str) -> str:
    """A place as a reason names it: printable, and without NUL, since a reason is stored too (a Kafka dead
    letter's `dlq_error` goes through the outbox's jsonb headers)."""
    return printable(key).replace("\x00", "\\u0000")


def printable(value: str) -> str:
    """The string made safe to echo in a response: a lone surrogate becomes its `\\udXXX` escape."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def find_unstorable(doc: Any, max_depth: int = MAX_DEPTH) -> tuple[Loc, str] | None:
    """The first value of a decoded JSON document that cannot be stored: (where, why), or None.

    Every partner event goes through here: a quick pass answers for the usual clean document (about half the
    cost of tracking where each value sits); only a document it flags is walked again to say where.
    """
    if not _flagged(doc, 1, max_depth):
        return None
    return _locate(doc, max_depth)


def _surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _flagged(value: Any, depth: int, max_depth: int) -> bool:
    # Plain loops, not any() over a generator: this runs for every partner event. Recursion stops at
    # max_depth + 1 frames: the depth is checked before descending.
    kind = type(value)
    if kind is str:
        return "\x00" in value or (not value.isascii() and _surrogate(value))
    if kind is dict:
        if depth > max_depth:
            return True
        for key, item in value.items():
            if type(key) is not str or "\x00" in key or (not key.isascii() and _surrogate(key)):
                return True
            if _flagged(item, depth + 1, max_depth):
                return True
        return False
    if kind is list:
        if depth > max_depth:
            return True
        for item in value:
            if _flagged(item, depth + 1, max_depth):
                return True
        return False
    if kind is int:
        return not -INT64 <= value < INT64
    if kind is float:
        return not math.isfinite(value)
    return not (value is None or kind is bool)  # anything else is not JSON: the locating walk judges it


def _locate(doc: Any, max_depth: int) -> tuple[Loc, str] | None:
    """Iterative, so a document nested as deep as the parser allowed cannot exhaust the stack here."""
    stack: list[tuple[Any, Loc, int]] = [(doc, (), 1)]
    while stack:
        value, loc, depth = stack.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                return loc, problem
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -INT64 <= value < INT64:
                return loc, "integer out of range (at most 64 bits)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return loc, "must be finite (not NaN or infinity)"
        elif isinstance(value, dict | list):
            if depth > max_depth:
                return loc, f"nested deeper than {max_depth} levels"
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str) and (problem := text_problem(key)):
                        return (*loc, printable(key)), f"key {problem}"
                    stack.append((item, (*loc, key), depth + 1))
            else:
                stack.extend((item, (*loc, i), depth + 1) for i, item in enumerate(value))
    return None


def loads(raw: bytes) -> Any:
    """JSON text as Python values, for a route that checks the values itself: raises ValueError if not JSON.

    orjson refuses valid JSON text that holds a lone surrogate escape ("\\ud800") or a number beyond a double
    (1e999999); the standard parser takes it, so the caller can reject just the value (and say where) with
    `find_unstorable`. The NaN and Infinity literals are not JSON and stay refused. Every reader of one body
    must parse it the same way: the gateway's check of a partner's batch sees what the service stores.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ValueError(str(error)) from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def describe(loc: Loc, problem: str) -> str:
    return f"{'.'.join(_shown(str(p)) for p in loc) or '(root)'}: {problem}"


def _storable_text(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


def _plausible_instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR} (in UTC)")
    return value


StorableText = Annotated[str, AfterValidator(_storable_text)]
"""A string Postgres can store and a response can echo (no NUL, no lone surrogates)."""

Instant = Annotated[AwareDatetime, AfterValidator(_plausible_instant)]
"""A date-time with a UTC offset, in years 1900–2200 once converted to UTC."""


def text(max_length: int, min_length: int = 0, **kwargs: Any) -> FieldInfo:
    """Bounded length without NUL characters, for a schema field: `name: Annotated[str, text(200, 1)]` (the
    pattern shows in the OpenAPI). A field, not a type: type checkers reject a call in an annotation."""
    field: FieldInfo = Field(min_length=min_length, max_length=max_length, pattern=NO_NUL, **kwargs)
    return field
