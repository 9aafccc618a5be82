from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from interaction.customers.schemas import CustomerSummaryRead, TimelineEntryRead


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


class PartnerRead(BaseModel):
    id: str
    name: str
    kind: PartnerKind
    auto_registered: bool = Field(description="Registered automatically when its first event arrived.")
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
