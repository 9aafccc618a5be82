"""The rows of a segment's CSV exports (members, history), page by page: one definition for the streamed export
and the export job (segmentation/exports), so both write the same columns in the same order."""

import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from segmentation.segments import repository

ExportKind = Literal["members", "history"]
MEMBER_COLUMNS = ["customer_id", "entered_at", "entered_version", "value", "value_currency", "tier", "stage"]
HISTORY_COLUMNS = ["customer_id", "entered_at", "entered_version", "entered_run_id", "left_at", "left_version", "left_run_id"]
COLUMNS: dict[str, list[str]] = {"members": MEMBER_COLUMNS, "history": HISTORY_COLUMNS}


async def read_page(
    session: AsyncSession, kind: str, segment_id: uuid.UUID, after: Any, limit: int
) -> tuple[list[list[Any]], Any]:
    """One page of CSV rows after the keyset position `after` (None: from the start), and the next position."""
    if kind == "members":
        rows = await repository.members(session, segment_id, after, limit)
        cells = [
            [r["customer_id"], r["entered_at"], r["entered_version"], r["clv"], r["clv_currency"], r["value_tier"], r["stage"]]
            for r in rows
        ]
        return cells, rows[-1]["customer_id"] if rows else after
    rows = await repository.segment_history(session, segment_id, after, limit)
    return [[r[c] for c in HISTORY_COLUMNS] for r in rows], rows[-1]["membership_id"] if rows else after


async def pages(
    factory: async_sessionmaker[AsyncSession], kind: str, segment_id: uuid.UUID, page_size: int
) -> AsyncIterator[list[list[Any]]]:
    """Every page, each read in its own short transaction (no connection held while the reader is slow)."""
    after = None
    while True:
        async with factory() as session:
            cells, after = await read_page(session, kind, segment_id, after, page_size)
        if not cells:
            return
        yield cells


async def count(session: AsyncSession, kind: str, segment_id: uuid.UUID) -> int:
    return await repository.count_rows(session, segment_id, current_only=kind == "members")
