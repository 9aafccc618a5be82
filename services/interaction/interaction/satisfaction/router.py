from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from shared.db import SessionDep
from shared.problems import DomainError, problem_responses
from shared.validation import Instant

from interaction.satisfaction import repository
from interaction.satisfaction.schemas import GroupBy, Interval, Satisfaction, SatisfactionReport

router = APIRouter(prefix="/v1/satisfaction", tags=["satisfaction"])
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


class BadPeriod(DomainError):
    status, slug, title = 422, "bad-period", "Invalid period"


def _point(r) -> Satisfaction:
    def pct(n: int, of: int) -> float | None:
        return round(100.0 * n / of, 1) if of else None

    return Satisfaction(
        group=r.grp,
        period=r.period,
        responses=r.responses,
        nps_responses=r.nps_responses,
        promoters=r.promoters,
        passives=r.passives,
        detractors=r.detractors,
        nps=round(100.0 * (r.promoters - r.detractors) / r.nps_responses, 1) if r.nps_responses else None,
        csat_responses=r.csat_responses,
        mean_csat=round(float(r.mean_csat), 2) if r.mean_csat is not None else None,
        csat=pct(r.satisfied, r.csat_responses),
    )


@router.get("", response_model=SatisfactionReport, responses=problem_responses(BadPeriod))
async def satisfaction(
    session: SessionDep,
    group_by: GroupBy = GroupBy.NONE,
    interval: Interval = Interval.MONTH,
    start: Annotated[Instant | None, Query(alias="from", description="Default: a year before `to`.")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="Exclusive; default: now.")] = None,
) -> SatisfactionReport:
    """NPS and CSAT over the period (totals) and per week or month (trend), overall or per segment, partner
    or proposition."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=365)
    if not (EARLIEST <= start < end <= LATEST):
        raise BadPeriod("need 1900-01-01 ≤ from < to ≤ 2200-01-01")
    totals = await repository.satisfaction(session, group_by.value, None, start, end)
    trend = await repository.satisfaction(session, group_by.value, interval.value, start, end)
    return SatisfactionReport(
        group_by=group_by,
        interval=interval,
        start=start,
        end=end,
        totals=[_point(r) for r in totals],
        trend=[_point(r) for r in trend],
    )
