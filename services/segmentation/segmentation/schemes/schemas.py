import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.validation import NO_NUL


class SchemeSegment(BaseModel):
    key: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$", examples=["champions"])
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL, examples=["Champions"])
    r: tuple[int, int] = Field(description="Inclusive R score range, 1–5.", examples=[[5, 5]])
    f: tuple[int, int] = Field(description="Inclusive F score range, 1–5.", examples=[[4, 5]])


class SchemeCreate(BaseModel):
    key: str = Field(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9\-]*$", examples=["my-scheme"])
    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    description: str | None = Field(None, max_length=1000, pattern=NO_NUL)
    segments: list[SchemeSegment] = Field(min_length=1, max_length=25)


class SchemeRead(BaseModel):
    scheme_id: uuid.UUID
    key: str
    name: str
    description: str | None
    builtin: bool
    segments: list[SchemeSegment]
    created_at: datetime


class SchemePage(BaseModel):
    items: list[SchemeRead]
