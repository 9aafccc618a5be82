import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class ExportCreate(BaseModel):
    kind: Literal["members", "history"] = Field(
        description="members: the current members (as "
        "GET /members/export); history: every entry and exit "
        "(as GET /history/export)."
    )


class ExportRead(BaseModel):
    export_id: uuid.UUID
    segment_id: uuid.UUID
    kind: Literal["members", "history"]
    status: Literal["queued", "running", "succeeded", "failed"]
    rows_total: int | None = Field(description="Rows counted when the export started (null while queued).")
    rows_written: int
    progress: float = Field(ge=0, le=1, description="rows_written / rows_total (1 once succeeded).")
    attempts: int = Field(description="Starts so far: an export whose replica died starts over.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download: str = Field(description="Where the CSV is downloaded from once succeeded (409 before).")
