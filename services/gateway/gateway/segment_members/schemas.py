"""The composed members page: segmentation's `Member` (referenced by its schema name in the merged OpenAPI
document, spliced in as segmentation sends it) plus the contact fields the gateway adds."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

# Segmentation's schema of one member; the merged document falls back to a plain object until it is merged.
SEGMENTATION_MEMBER = "Member"


class MemberContact(BaseModel):
    """Added by the gateway to each of segmentation's members, from its copy of interaction's profile."""

    name: str | None = Field(
        description=(
            "The profile attribute `name` (or `full_name`), else `first_name` and `last_name` joined. Null unless "
            "the customer granted the `email_marketing` consent and the caller's role may read profiles."
        )
    )
    email: str | None = Field(description="The profile's first `email` identifier; null on the same terms as `name`.")
    contact_withheld: Literal["not-permitted", "no-consent", "erased", "no-profile"] | None = Field(
        description=(
            "Why `name` and `email` are null: the role may not read profiles, no granted `email_marketing` "
            "consent, the customer's PII was erased, or no profile is known (or interaction could not answer and "
            "no copy is held). Null when they are given."
        )
    )


_MEMBER = WithJsonSchema({"allOf": [{"$ref": f"#/components/schemas/{SEGMENTATION_MEMBER}"}, MemberContact.model_json_schema()]})


class MemberWithContactPage(BaseModel):
    """Segmentation's page of members as it answered it (order, `next_cursor`), each with `name` and `email`."""

    items: list[Annotated[dict[str, Any], _MEMBER]]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
