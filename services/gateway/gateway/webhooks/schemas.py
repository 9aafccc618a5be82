import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, Field, field_validator
from yarl import URL

from shared.contracts.interaction import CustomEventRecorded
from shared.validation import StorableText

from gateway.webhooks.events import DOMAIN_EVENT_TYPES

CUSTOM_EVENT = CustomEventRecorded.EVENT_TYPE
# A partner event type's name (interaction's event_types/schemas.py), e.g. order.shipped.
PARTNER_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}(\.[a-z][a-z0-9_]{0,49}){1,3}$")

FilterValue = StorableText | list[StorableText]


def _check_types(types: list[str] | None) -> list[str] | None:
    if types is None:
        return None
    unknown = sorted(set(types) - set(DOMAIN_EVENT_TYPES))
    if unknown:
        hint = ""
        partner_types = [t for t in unknown if PARTNER_TYPE_NAME.match(t)]
        if partner_types:
            # A custom event type's events arrive as one domain event type; its name is a field to filter on.
            hint = (
                f". Events of a custom event type are delivered as {CUSTOM_EVENT}: subscribe to it with "
                f'filters {{"event_type": "{partner_types[0]}"}}'
            )
        raise ValueError(f"unknown event types {unknown}; known: {sorted(DOMAIN_EVENT_TYPES)}{hint}")
    return list(dict.fromkeys(types))


def _check_filters(filters: dict[str, FilterValue] | None) -> dict[str, FilterValue] | None:
    for key, value in (filters or {}).items():
        if not key or len(key) > 100:
            raise ValueError("a filter field name has 1 to 100 characters")
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > 50 or any(len(v) > 200 for v in values):
            raise ValueError(f"filter {key!r}: 1 to 50 values of at most 200 characters")
    return filters


class WebhookCreate(BaseModel):
    """Subscribe a URL to domain events, optionally only those whose fields match the filters."""

    url: AnyHttpUrl = Field(examples=["https://crm.example.com/hooks/stage"])
    event_types: list[str] = Field(min_length=1, max_length=50, examples=[["stage.changed"]])
    filters: dict[StorableText, FilterValue] = Field(
        default_factory=dict,
        max_length=20,
        examples=[{"to_stage": "loyalty"}, {"segment_key": "rfm:champions"}],
        description="Field of the event's data → required value (or any of a list). `a.b` reaches nested fields.",
    )
    description: StorableText | None = Field(None, max_length=500)

    _types = field_validator("event_types")(_check_types)
    _filters = field_validator("filters")(_check_filters)


class WebhookUpdate(BaseModel):
    """Change a subscription; omitted fields stay as they are."""

    url: AnyHttpUrl | None = None
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    filters: dict[StorableText, FilterValue] | None = Field(None, max_length=20)
    description: StorableText | None = Field(None, max_length=500)
    active: bool | None = None

    _types = field_validator("event_types")(_check_types)
    _filters = field_validator("filters")(_check_filters)


def redact_credentials(url: str) -> str:
    """`https://user:secret@host/…` → `https://***@host/…`: creation refuses such URLs now, older rows may
    still carry them, and every role that may read webhooks (analysts included) sees this field."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return url
    if parsed.raw_user is None and parsed.raw_password is None:
        return url
    return str(parsed.with_user("***").with_password(None))


class WebhookRead(BaseModel):
    id: uuid.UUID
    url: Annotated[str, AfterValidator(redact_credentials)]
    event_types: list[str]
    filters: dict[str, FilterValue]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="The HMAC-SHA256 signing secret: shown once, store it now.",
        examples=["whsec_V2hhdCBhIHNlY3JldCB0aGlzIGlzIDEyMzQ1Njc4OTA"],
    )


class WebhookPage(BaseModel):
    items: list[WebhookRead]
    next_cursor: str | None


DeliveryStatus = Literal["pending", "delivered", "failed"]


class DeliveryRead(BaseModel):
    """One event's delivery to one subscription: its attempts so far and the last outcome."""

    id: int
    subscription_id: uuid.UUID
    event_id: str
    event_source: str
    event_type: str
    ordering_key: str = Field(description="Deliveries with the same key (the customer) go out in order.")
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None
