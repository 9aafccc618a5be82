from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.validation import StorableText

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,49}(\.[a-z][a-z0-9_]{0,49}){1,3}$"


class EventTypeCreate(BaseModel):
    """A custom event type, or a new version of one: the JSON Schema its events' `data` must satisfy."""

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=100,
        examples=["order.shipped"],
        description="Dotted lower-case words (`noun.verb`); not one of the fixed types.",
    )
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="JSON Schema (draft 2020-12) of the event's `data`: an object schema; "
        "local `$ref`s only; at most 64 KiB and 32 levels deep. Formats are checked.",
        examples=[
            {
                "type": "object",
                "required": ["order_id", "carrier"],
                "properties": {
                    "order_id": {"type": "string", "maxLength": 100},
                    "carrier": {"type": "string", "maxLength": 50},
                    "shipped_at": {"type": "string", "format": "date-time"},
                },
            }
        ],
    )
    description: StorableText | None = Field(None, max_length=500)

    model_config = {"populate_by_name": True}


class EventTypeRead(BaseModel):
    name: str
    version: int
    dataschema: str = Field(
        description="What an event names in `dataschema` to be checked against this version.",
        examples=["urn:crm:schema:order.shipped:v1"],
    )
    json_schema: dict[str, Any] = Field(serialization_alias="schema")
    description: str | None
    created_at: datetime


class EventTypeList(BaseModel):
    items: list[EventTypeRead]
