from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from interaction.customers.schemas import CustomerSummaryRead, TimelineEntryRead


TRUST = ("Whether the emails and phones in this partner's events link its customers to other partners' "
         "(identity resolution). Off: they are ignored, so the partner can neither merge nor attach facts to "
         "customers it only names by contact details. Off for new and auto-registered partners.")


class PartnerKind(StrEnum):
    SUPPLIER = "supplier"
    DISTRIBUTOR = "distributor"
    RESELLER = "reseller"
    SERVICE_PARTNER = "service_partner"
    RETAILER = "retailer"
    MARKETPLACE = "marketplace"
    SUPPORT_DESK = "support_desk"
    MARKETING = "marketing"
    INVESTOR = "investor"
    OTHER = "other"
    UNCLASSIFIED = "unclassified"


class PartnerCreate(BaseModel):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$", examples=["shop-eu"],
                    description="The partner's `source` in the events it sends.")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$", examples=["EU web shop"])
    kind: PartnerKind
    trust_contact_linking: bool = Field(False, description=TRUST)


class PartnerUpdate(BaseModel):
    """The fields to change; omitted ones stay as they are."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    kind: PartnerKind | None = None
    trust_contact_linking: bool | None = Field(None, description=TRUST)


class PartnerRead(BaseModel):
    id: str
    name: str
    kind: PartnerKind
    auto_registered: bool = Field(description="Registered automatically when its first event arrived.")
    trust_contact_linking: bool = Field(description=TRUST)
    created_at: datetime
    updated_at: datetime


class PartnerPage(BaseModel):
    items: list[PartnerRead]
    next_cursor: str | None = None


class PartnerCustomerPage(BaseModel):
    items: list[CustomerSummaryRead]
    next_cursor: str | None = None


class PartnerTouchpointPage(BaseModel):
    items: list[TimelineEntryRead]
    next_cursor: str | None = None
