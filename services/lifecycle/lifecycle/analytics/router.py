from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from shared.db import SessionDep
from shared.problems import DomainError, problem_responses

from lifecycle.analytics import repository
from lifecycle.analytics.schemas import (
    ChurnRead,
    DistributionPoint,
    DistributionRead,
    FunnelCohort,
    FunnelRead,
    FunnelStep,
    Interval,
    PipelineForecast,
    PipelineValueRead,
    StageValue,
    TimeInStage,
    TimeInStageRead,
)

router = APIRouter(prefix="/v1/lifecycle/analytics", tags=["lifecycle analytics"])
MAX_POINTS = 400
# Postgres timestamptz spans 4713 BC to 294276 AD; keep the bounds well inside.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


class BadPeriod(DomainError):
    status, slug, title = 422, "bad-period", "Invalid period"


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    if not EARLIEST + timedelta(days=365) <= end <= LATEST:
        raise BadPeriod("need 1901-01-01 ≤ to ≤ 3000-01-01")
    start = start or end - timedelta(days=365)
    if not (EARLIEST <= start < end):
        raise BadPeriod("need 1900-01-01 ≤ from < to ≤ 3000-01-01")
    return start, end


From = Query(None, alias="from", description="Period start (default: a year before `to`).")
To = Query(None, alias="to", description="Period end, exclusive (default: now).")


@router.get("/funnel", response_model=FunnelRead, responses=problem_responses(BadPeriod))
async def funnel(
    session: SessionDep,
    start: AwareDatetime | None = From,
    end: AwareDatetime | None = To,
    by_cohort: bool = Query(False, description="One funnel per month of first entry."),
) -> FunnelRead:
    """Per stage Approach → … → Loyalty, for customers whose lifecycle began in the period: how many entered it,
    how many skipped it (entered a later stage without ever being in it), and how many went on to the next."""
    start, end = _period(start, end)
    counted = await repository.funnel(session, start, end, by_cohort)
    cohorts = []
    for cohort, counts in counted.items():
        steps = []
        last = len(repository.FUNNEL_STAGES) - 1
        for i, (stage, c) in enumerate(zip(repository.FUNNEL_STAGES, counts["stages"], strict=True)):
            steps.append(
                FunnelStep(
                    stage=stage,
                    entered=c["entered"],
                    skipped=c["skipped"],
                    converted_to_next=None if i == last else c["converted"],
                    conversion_to_next=c["converted"] / c["entered"] if i < last and c["entered"] else None,
                )
            )
        cohorts.append(FunnelCohort(cohort=cohort, customers=counts["customers"], steps=steps))
    return FunnelRead(start=start, end=end, cohorts=cohorts)


@router.get("/time-in-stage", response_model=TimeInStageRead, responses=problem_responses(BadPeriod))
async def time_in_stage(
    session: SessionDep, start: AwareDatetime | None = From, end: AwareDatetime | None = To
) -> TimeInStageRead:
    """Median, p90 and mean time in each stage, over the completed stays entered in the period."""
    start, end = _period(start, end)
    rows = await repository.time_in_stage(session, start, end)
    return TimeInStageRead(
        start=start,
        end=end,
        stages=[
            TimeInStage(
                stage=r.stage, stays=r.stays, median_seconds=r.median_s, p90_seconds=r.p90_s, mean_seconds=float(r.mean_s)
            )
            for r in rows
        ],
    )


@router.get("/distribution", response_model=DistributionRead, responses=problem_responses(BadPeriod))
async def distribution(
    session: SessionDep, start: AwareDatetime | None = From, end: AwareDatetime | None = To, interval: Interval = Interval.MONTH
) -> DistributionRead:
    """How many customers were in each stage at each interval start over the period."""
    start, end = _period(start, end)
    step = {Interval.DAY: 1, Interval.WEEK: 7, Interval.MONTH: 28}[interval]
    if (end - start).days / step > MAX_POINTS:
        raise BadPeriod(f"more than {MAX_POINTS} points: widen the interval or shorten the period")
    points: dict[datetime, dict[str, int]] = {}
    for r in await repository.distribution(session, start, end, interval.value):
        points.setdefault(r.at, {})[r.stage] = r.customers
    return DistributionRead(interval=interval, points=[DistributionPoint(at=at, counts=c) for at, c in points.items()])


@router.get("/churn", response_model=ChurnRead, responses=problem_responses(BadPeriod))
async def churn(session: SessionDep, start: AwareDatetime | None = From, end: AwareDatetime | None = To) -> ChurnRead:
    """Churn and reactivation over the period."""
    start, end = _period(start, end)
    r = await repository.churn(session, start, end)
    exposed, pool = r.active_at_start + r.became_active, r.churned_at_start + r.churned
    return ChurnRead(
        start=start,
        end=end,
        active_at_start=r.active_at_start,
        became_active=r.became_active,
        churned=r.churned,
        churn_rate=r.churned / exposed if exposed else None,
        churned_at_start=r.churned_at_start,
        reactivated=r.reactivated,
        reactivation_rate=r.reactivated / pool if pool else None,
    )


@router.get("/pipeline-value", response_model=PipelineValueRead, responses=problem_responses(BadPeriod))
async def pipeline_value(
    session: SessionDep,
    pipeline: str | None = Query(None, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$"),
    close_from: AwareDatetime | None = Query(None, description="Expected close on or after."),
    close_to: AwareDatetime | None = Query(None, description="Expected close before."),
) -> PipelineValueRead:
    """Weighted pipeline value (forecast) per pipeline and currency: Σ amount × stage win probability."""
    for bound in (close_from, close_to):
        if bound is not None and not (EARLIEST <= bound <= LATEST):
            raise BadPeriod("expected-close bounds must lie between 1900 and 3000")
    forecasts: dict[tuple[str, str], PipelineForecast] = {}
    for r in await repository.pipeline_value(session, pipeline, close_from, close_to):
        f = forecasts.setdefault(
            (r.pipeline, r.currency),
            PipelineForecast(pipeline=r.pipeline, currency=r.currency, deals=0, amount=0, weighted=0, stages=[]),
        )
        f.deals += r.deals
        f.amount += r.amount
        f.weighted += r.weighted
        f.stages.append(
            StageValue(stage=r.stage, win_probability=r.win_probability, deals=r.deals, amount=r.amount, weighted=r.weighted)
        )
    return PipelineValueRead(forecasts=list(forecasts.values()))
