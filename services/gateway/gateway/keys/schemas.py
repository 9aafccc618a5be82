import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.validation import Instant, StorableText

from gateway.security.principal import Role


class ApiKeyCreate(BaseModel):
    """A new API key. A partner key names the partner (the `source` its events must carry)."""

    name: StorableText = Field(min_length=1, max_length=100, examples=["shop-eu production"])
    role: Role = Field(examples=["partner"])
    partner_id: StorableText | None = Field(None, min_length=1, max_length=200, examples=["shop-eu"])
    expires_at: Instant | None = Field(None, examples=["2027-12-31T23:59:59Z"])
    rate_limit_per_s: float | None = Field(None, gt=0, le=100_000, description="Overrides the default per-key rate.")


class ApiKeyRead(BaseModel):
    """An API key's record; the key itself is only shown when it is created."""

    id: uuid.UUID
    name: str
    role: Role
    partner_id: str | None
    prefix: str = Field(description="The key's first characters, to recognise it.", examples=["crm_Xq3v9a"])
    rate_limit_per_s: float | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Recorded at most once a minute.")
    created_at: datetime
    updated_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(
        description="The API key: shown once, store it now. Send it in the X-API-Key header.",
        examples=["crm_6d0RZ8f0m3xS0x4tJc1o8b3mVbO5Zq2yWgEw7l1kPqA"],
    )


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
