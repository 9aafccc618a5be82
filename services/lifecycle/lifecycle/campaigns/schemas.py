from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.validation import StorableText

Money = Decimal
KEY = r"^[^\s\x00/][^\x00/]{0,199}$"


class CampaignFields(BaseModel):
    name: StorableText | None = Field(None, min_length=1, max_length=200)
    channel: StorableText | None = Field(None, max_length=40, examples=["email"])
    budget: Money | None = Field(None, ge=0, max_digits=18, decimal_places=4, description="Planned spend.")
    cost: Money | None = Field(
        None,
        ge=0,
        max_digits=18,
        decimal_places=4,
        description="Spent so far; cost per acquisition and return are reported when given.",
    )
    starts_on: date | None = None
    ends_on: date | None = None

    @model_validator(mode="after")
    def _dates(self):
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class CampaignCreate(CampaignFields):
    """A campaign: `key` is the `campaign` value partners put on their leads (`lead.captured`)."""

    key: StorableText = Field(min_length=1, max_length=200, pattern=KEY, examples=["spring-sale"])
    name: StorableText = Field(min_length=1, max_length=200, examples=["Spring sale"])
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="Of budget and cost.")

    @field_validator("key")
    @classmethod
    def _not_the_report(cls, key: str) -> str:
        if key == "report":
            raise ValueError("'report' is the report's path, not a campaign key")
        return key


class CampaignUpdate(CampaignFields):
    model_config = ConfigDict(extra="forbid")


class CampaignRead(BaseModel):
    key: str
    name: str
    channel: str | None
    currency: str
    budget: Money | None
    cost: Money | None
    starts_on: date | None
    ends_on: date | None
    created_at: datetime
    updated_at: datetime


class CampaignPage(BaseModel):
    items: list[CampaignRead]
    next_cursor: str | None = None


class GroupBy(StrEnum):
    CAMPAIGN = "campaign"
    LEAD_SOURCE = "lead_source"


class Cohort(StrEnum):
    WEEK = "week"
    MONTH = "month"


class CampaignReportRow(BaseModel):
    key: str = Field(description="The campaign key or the lead source.")
    name: str | None = Field(None, description="The campaign's name, when it is registered.")
    cohort: datetime | None = Field(None, description="Week or month of the customers' first lead; null: the period.")
    leads: int = Field(description="Leads captured (lead.captured events) in the period.")
    qualified_leads: int = Field(description="Of them, qualified.")
    customers: int = Field(description="Customers whose first lead (first touch) in the period came from here.")
    first_purchases: int = Field(description="Of those customers, how many have made a first purchase (before `to`).")
    conversion_rate: float | None = Field(description="first_purchases / customers.")
    revenue: Money = Field(
        description="Net revenue (refunds off, cancellations out) of the acquired customers before `to`, in `currency`."
    )
    clv: Money = Field(description="Σ current CLV (clv's latest) of the acquired customers, in `currency`.")
    cost: Money | None = Field(description="The campaign's cost, when given in `currency` (not per cohort).")
    cost_per_acquisition: Money | None = Field(description="cost / first_purchases.")
    return_on_cost: float | None = Field(description="(revenue − cost) / cost.")
    clv_return_on_cost: float | None = Field(
        description="(clv − cost) / cost: the return the acquired customers' lifetime value promises."
    )


class CampaignReport(BaseModel):
    group_by: GroupBy
    currency: str
    start: datetime
    end: datetime
    cohort: Cohort | None
    rows: list[CampaignReportRow]
