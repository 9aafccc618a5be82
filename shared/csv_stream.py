"""CSV for spreadsheets: cells that a spreadsheet would run as a formula are escaped, rows stream as they come.

A cell starting with `=`, `+`, `-`, `@`, tab or carriage return is prefixed with `'` (OWASP's advice against CSV
injection), so a customer attribute like `=HYPERLINK(...)` opens as text. Numbers are written by the caller as
numbers (a negative amount is a number, not text, so it is not escaped).
"""

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def encode_rows(rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buffer.getvalue().encode()


async def stream_csv(header: list[str], pages: AsyncIterator[Iterable[Iterable[Any]]]) -> AsyncIterator[bytes]:
    """The header, then one chunk per page of rows (the caller pages by keyset, so memory stays one page)."""
    yield encode_rows([header])
    async for page in pages:
        yield encode_rows(page)
