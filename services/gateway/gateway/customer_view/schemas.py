"""The composed view's response. The parts are the owners' own read models, referenced by their schema names
in the merged OpenAPI document (the gateway splices the owners' JSON in as sent; it never re-shapes it)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

# Part → (owning service, the owner's schema of it, path under /v1/customers/{id}).
PART_SOURCES = {
    "profile": ("interaction", "CustomerProfileRead", ""),
    "segmentation": ("segmentation", "CustomerSegmentationRead", "/segmentation"),
    "value": ("clv", "CustomerValueRead", "/value"),
    "lifecycle": ("lifecycle", "CustomerLifecycleRead", "/lifecycle"),
}
PART_SCHEMAS = {schema: service for service, schema, _ in PART_SOURCES.values()}


def _ref(name: str, nullable: bool = True) -> Any:
    ref = {"$ref": f"#/components/schemas/{name}"}
    # `allOf` around a lone reference: pydantic resolves a bare `$ref` in its own definitions.
    return WithJsonSchema({"anyOf": [ref, {"type": "null"}]} if nullable else {"allOf": [ref]})


class PartSource(BaseModel):
    """Where a part's content comes from and how old it is."""

    as_of: datetime | None = Field(
        description=(
            "When the owner gave this content (the gateway's clock when it asked). Null: the owner could not be "
            "asked and the gateway holds no copy (the part is `unavailable`)."
        )
    )
    version: int | None = Field(
        None,
        description=(
            "The owner's version of the part as last published in its events (lifecycle: the stage's `version` of "
            "stage.changed; value: customer.value_updated's `version`); null for parts whose owner publishes none."
        ),
    )
    from_copy: bool = Field(description="Served from the gateway's copy instead of asking the owner now.")
    stale: bool = Field(
        False,
        description=(
            "The copy is served although the owner has changed since (an event arrived after `as_of`, or the copy "
            "is older than the gateway's maximum age): the owner could not be asked."
        ),
    )


class PartSources(BaseModel):
    profile: PartSource
    segmentation: PartSource
    value: PartSource
    lifecycle: PartSource


class CustomerView(BaseModel):
    """One call for a customer screen. Every null part says why: its service is down and no copy is held
    (`unavailable`) or it knows nothing of the customer yet (`absent`, with the service's reason). `sources`
    says per part how old it is and whether it came from the gateway's copy."""

    customer_id: uuid.UUID = Field(description="The customer the parts are about: the survivor for a merged-away id.")
    resolved_from: uuid.UUID | None = Field(None, description="Set when the id asked for was merged into `customer_id`.")
    profile: Annotated[dict[str, Any], _ref("CustomerProfileRead", nullable=False)]
    segmentation: Annotated[dict[str, Any] | None, _ref("CustomerSegmentationRead")]
    value: Annotated[dict[str, Any] | None, _ref("CustomerValueRead")]
    lifecycle: Annotated[dict[str, Any] | None, _ref("CustomerLifecycleRead")]
    unavailable: list[str] = Field(
        default_factory=list, description="Parts whose service could not answer and of which no copy is held."
    )
    absent: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Parts that are null because their service has nothing on this customer yet (e.g. no purchase to value, "
            "no lifecycle fact), each with the service's reason."
        ),
    )
    sources: PartSources
