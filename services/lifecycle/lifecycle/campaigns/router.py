from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Response

from shared.db import SessionDep
from shared.pagination import Cursor, InvalidCursor, Limit, decode, encode
from shared.problems import DomainError, NotFound, problem_responses
from shared.validation import Instant

from lifecycle.campaigns import repository, service
from lifecycle.campaigns.schemas import (
    KEY,
    CampaignCreate,
    CampaignPage,
    CampaignRead,
    CampaignReport,
    CampaignUpdate,
    Cohort,
    GroupBy,
)

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
CampaignKey = Annotated[str, Path(min_length=1, max_length=200, pattern=KEY)]
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


class BadPeriod(DomainError):
    status, slug, title = 422, "bad-period", "Invalid period"


@router.post("", response_model=CampaignRead, status_code=201, responses=problem_responses(service.CampaignExists))
async def create_campaign(body: CampaignCreate, response: Response, session: SessionDep) -> CampaignRead:
    """Register a campaign (its key is the `campaign` on partners' leads) with its budget, cost and dates."""
    created = await service.create(session, body)
    # The key is the partners' free text: percent-encoded, as a header holds Latin-1 only (a key with '€' was a 500).
    response.headers["Location"] = f"/v1/campaigns/{quote(created.key, safe='')}"
    return created


@router.get("", response_model=CampaignPage, responses=problem_responses(InvalidCursor))
async def list_campaigns(session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> CampaignPage:
    """Registered campaigns, by key."""
    after = decode(cursor, str)
    rows = await repository.page_campaigns(session, after[0] if after else None, limit + 1)
    page = rows[:limit]
    return CampaignPage(items=[service.to_read(r) for r in page], next_cursor=encode(page[-1].key) if len(rows) > limit else None)


@router.get("/report", response_model=CampaignReport, responses=problem_responses(BadPeriod))
async def campaign_report(
    session: SessionDep,
    currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="Money is never summed across currencies.")],
    group_by: GroupBy = GroupBy.CAMPAIGN,
    cohort: Annotated[Cohort | None, Query(description="One row per week or month of the customers' first lead.")] = None,
    start: Annotated[Instant | None, Query(alias="from", description="Default: a year before `to`.")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="Exclusive; default: now.")] = None,
) -> CampaignReport:
    """Leads, qualified leads, customers reached first, first purchases, revenue and CLV of the customers acquired,
    by campaign or lead source over the period (and by cohort); cost per acquisition and return where a
    campaign's cost is given in `currency`."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=365)
    if not (EARLIEST <= start < end <= LATEST):
        raise BadPeriod("need 1900-01-01 ≤ from < to ≤ 2200-01-01")
    return await service.report(session, group_by, cohort, currency, start, end)


@router.get("/{key}", response_model=CampaignRead, responses=problem_responses(NotFound))
async def get_campaign(key: CampaignKey, session: SessionDep) -> CampaignRead:
    """One campaign."""
    return service.to_read(await service.get(session, key))


@router.patch("/{key}", response_model=CampaignRead, responses=problem_responses(NotFound, service.InvalidCampaign))
async def update_campaign(key: CampaignKey, body: CampaignUpdate, session: SessionDep) -> CampaignRead:
    """Change a campaign's name, channel, budget, cost (spent so far) or dates."""
    return await service.update(session, key, body)
