"""Rules of campaigns and their report: attribution by first touch, cost per acquisition and return."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from shared.problems import DomainError, NotFound

from lifecycle.campaigns import repository
from lifecycle.campaigns.schemas import (
    CampaignCreate,
    CampaignRead,
    CampaignReport,
    CampaignReportRow,
    CampaignUpdate,
    Cohort,
    GroupBy,
)

CENT = Decimal("0.0001")


class InvalidCampaign(DomainError):
    status, slug, title = 422, "invalid-campaign", "Campaign not acceptable"


class CampaignExists(DomainError):
    status, slug, title = 409, "campaign-exists", "Campaign already registered"


def to_read(row) -> CampaignRead:
    return CampaignRead.model_validate(row._mapping)


async def create(session: AsyncSession, body: CampaignCreate) -> CampaignRead:
    row = await repository.insert_campaign(session, body.model_dump())
    if row is None:
        raise CampaignExists(f"campaign {body.key!r} exists; PATCH it to change it")
    return to_read(row)


async def update(session: AsyncSession, key: str, body: CampaignUpdate) -> CampaignRead:
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise InvalidCampaign("name cannot be cleared (null)")
    current = await get(session, key)
    starts, ends = changes.get("starts_on", current.starts_on), changes.get("ends_on", current.ends_on)
    if starts and ends and ends < starts:
        raise InvalidCampaign("ends_on is before starts_on")
    row = await repository.update_campaign(session, key, changes) if changes else current
    return to_read(row)


async def get(session: AsyncSession, key: str):
    row = await repository.get_campaign(session, key)
    if row is None:
        raise NotFound(f"no campaign {key!r}")
    return row


def _ratio(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole), 4) if whole else None


async def report(
    session: AsyncSession, group_by: GroupBy, cohort: Cohort | None, currency: str, start: datetime, end: datetime
) -> CampaignReport:
    rows = await repository.report(session, group_by.value, cohort.value if cohort else None, currency, start, end)
    campaigns = await repository.campaigns_by_key(session, sorted({r.key for r in rows})) if group_by is GroupBy.CAMPAIGN else {}
    out = []
    for r in rows:
        c = campaigns.get(r.key)
        # A campaign's cost is one figure for the whole campaign: per cohort it would have to be apportioned.
        cost = c.cost if c is not None and c.cost is not None and c.currency == currency and cohort is None else None
        out.append(
            CampaignReportRow(
                key=r.key,
                name=c.name if c is not None else None,
                cohort=r.cohort,
                leads=r.leads,
                qualified_leads=r.qualified,
                customers=r.customers,
                first_purchases=r.first_purchases,
                conversion_rate=round(r.first_purchases / r.customers, 4) if r.customers else None,
                revenue=r.revenue,
                clv=r.clv,
                cost=cost,
                cost_per_acquisition=(cost / r.first_purchases).quantize(CENT)
                if cost is not None and r.first_purchases
                else None,
                return_on_cost=_ratio(r.revenue - cost, cost) if cost is not None else None,
                clv_return_on_cost=_ratio(r.clv - cost, cost) if cost is not None else None,
            )
        )
    return CampaignReport(group_by=group_by, currency=currency, start=start, end=end, cohort=cohort, rows=out)
