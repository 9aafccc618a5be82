from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import NO_NUL

from interaction.customers.schemas import CustomerSummaryRead, TimelineEntryRead

TRUST = (
    "Whether the emails and phones in this partner's events link its customers to other partners' "
    "(identity resolution). Off: they are ignored, so the partner can neither merge nor attach facts to "
    "customers it only names by contact details. Off for new and auto-registered partners."
)


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
    EMPLOYEE = "employee"
    OTHER = "other"
    UNCLASSIFIED = "unclassified"


class PartnerCreate(BaseModel):
    id: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00]+$",
        examples=["shop-eu"],
        description="The partner's `source` in the events it sends.",
    )
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL, examples=["EU web shop"])
    kind: PartnerKind
    trust_contact_linking: bool = Field(False, description=TRUST)


class PartnerUpdate(BaseModel):
    """The fields to change; omitted ones stay as they are."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)
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


class PartnerRevenue(BaseModel):
    currency: str
    orders: int = Field(description="Orders this partner sent, cancelled ones excluded.")
    revenue: Decimal = Field(description="Σ order amount − refunds, cancelled orders excluded (4 decimals).")


class PartnerFeedback(BaseModel):
    responses: int
    nps_responses: int
    nps: float | None = Field(description="% promoters (9–10) − % detractors (0–6) of the NPS answers; null without any.")
    mean_nps: float | None
    csat_responses: int
    mean_csat: float | None


class PartnerSegmentShare(BaseModel):
    segment_key: str
    segment_name: str
    members: int = Field(description="The segment's current members (live customers).")
    brought: int = Field(description="Members this partner brought (its event was the customer's first fact).")
    reached: int = Field(description="Members this partner has any fact about.")
    share: float = Field(description="brought / members: the partner's share of the segment.")


class PartnerFigures(BaseModel):
    """What a partner contributes: customers brought and reached, revenue, touchpoints, feedback, segment shares."""

    partner_id: str
    customers_brought: int = Field(description="Live customers whose first recorded fact came from this partner.")
    customers_reached: int = Field(description="Live customers this partner sent any fact about.")
    revenue: list[PartnerRevenue] = Field(description="Per currency; money is never summed across currencies.")
    touchpoints: int = Field(description="interaction.logged events from this partner.")
    feedback: PartnerFeedback
    segments: list[PartnerSegmentShare] = Field(
        description="Every segment with members, largest share first. Memberships come from segmentation's events."
    )
