from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Interval(StrEnum):
    WEEK = "week"
    MONTH = "month"


class GroupBy(StrEnum):
    NONE = "none"
    SEGMENT = "segment"
    PARTNER = "partner"
    PROPOSITION = "proposition"


class Satisfaction(BaseModel):
    group: str | None = Field(description="The segment key, partner id or proposition id; null when not grouped.")
    period: datetime | None = Field(None, description="Start of the week or month (UTC); null in the totals.")
    responses: int = Field(description="Feedback answers (with an NPS, a CSAT or both).")
    nps_responses: int
    promoters: int = Field(description="NPS 9–10.")
    passives: int = Field(description="NPS 7–8.")
    detractors: int = Field(description="NPS 0–6.")
    nps: float | None = Field(description="% promoters − % detractors (−100…100); null without NPS answers.")
    csat_responses: int
    mean_csat: float | None = Field(description="Mean CSAT (1–5).")
    csat: float | None = Field(description="% of CSAT answers that are 4 or 5.")


class SatisfactionReport(BaseModel):
    """Totals per group over the period, and the trend: one point per group and week or month with answers."""

    group_by: GroupBy
    interval: Interval
    start: datetime
    end: datetime
    totals: list[Satisfaction]
    trend: list[Satisfaction]
