"""Scoring as a job: per-customer values from a fitted model version, tiers, and value-updated events.

The numbers are computed in a worker thread on whole arrays; the database work is set-based: new values are
staged in a temporary table, compared there with the stored ones (to find material changes), then upserted.
"""

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import jobs
from shared.contracts import clv as contracts
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CLV_EVENTS
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from clv.fits import repository as fits
from clv.fits.service import FitNotUsable, spend_model
from clv.fits.service import problems as fit_problems
from clv.jobs import launch
from clv.probability_models import MODELS, wallet_ratio
from clv.probability_models.value import DAYS_PER_MONTH
from clv.scoring.models import customer_value, scoring_run
from clv.scoring.schemas import ScoringCreate, ScoringRead, TierReport, TierSummary
from clv.settings import ClvSettings
from clv.transaction_summary.repository import Statistics, load_statistics

log = logging.getLogger(__name__)
TIERS = [("platinum", 0.95), ("gold", 0.80), ("silver", 0.50)]
# The wallet's quantile when a run's settings predate it (docs/clv.md, potential value).
WALLET_QUANTILE = 0.9
CHUNK = 20_000


def compute_values(
    model_name: str,
    params: dict,
    spend_params: dict,
    stats: Statistics,
    settings: dict,
    thresholds: dict[str, float] | None = None,
) -> dict:
    """Every per-customer figure, vectorised (see docs/clv.md for the definitions).

    The tier thresholds are the CLV quantiles of these customers, or the given ones (a run's, when a few
    customers are scored incrementally against the population that run saw)."""
    model = MODELS[model_name].from_params(params)
    spend = spend_model(spend_params)
    units_per_month = DAYS_PER_MONTH / settings["time_unit_days"]
    margin, d = settings["margin"], settings["monthly_discount_rate"]
    x, t_x, T = stats.x, stats.t_x, stats.T
    p_alive = model.p_alive(x, t_x, T)
    expected_spend = spend.expected_spend(x, stats.mean_repeat_spend)
    current_units = settings["current_months"] * units_per_month
    expected_purchases = model.expected_purchases(current_units, x, t_x, T)
    current = model.discounted_purchases(x, t_x, T, period=units_per_month, periods=settings["current_months"], discount_rate=d)
    lifetime = model.discounted_purchases(x, t_x, T, period=units_per_month, periods=settings["horizon_months"], discount_rate=d)
    # If certainly alive: the same expectation with P(alive) = 1 (discounted_purchases is growth × P(alive)).
    retained = np.divide(lifetime, p_alive, out=np.zeros_like(lifetime), where=p_alive > 0)
    clv = margin * expected_spend * lifetime
    # Potential: m × P(alive) × (wallet − expected spend if alive) over the horizon, the wallet being the
    # high-quantile spend the customer's history allows (docs/clv.md, Values): (ratio − 1) × CLV.
    ratio = wallet_ratio(model, spend, x, settings.get("wallet_quantile", WALLET_QUANTILE))
    values = {
        "probability_alive": p_alive,
        "expected_purchases": expected_purchases,
        "expected_spend": expected_spend,
        "historical_value": margin * stats.net_value,
        "current_value": margin * expected_spend * current,
        "clv": clv,
        "potential_value": np.maximum(ratio - 1.0, 0.0) * clv,
        "retention_value": np.maximum(margin * expected_spend * retained - clv, 0.0),
    }
    for name, v in values.items():
        if not np.isfinite(v).all():
            raise FitNotUsable(f"the model gives non-finite {name} for some customers")
    if thresholds is None:
        thresholds = {name: float(np.quantile(clv, q)) for name, q in TIERS}
    tier = np.full(len(clv), "bronze", dtype=object)
    for name, _ in reversed(TIERS):  # silver, then gold, then platinum overwrite
        tier[clv >= thresholds[name]] = name
    values["tier"] = tier
    return {"values": values, "thresholds": thresholds}


async def launch_scoring(app: FastAPI, run_id: uuid.UUID, settings: ClvSettings) -> None:
    """Run the scoring in the background; called once its row has committed (a response background task)."""
    launch(app, run_scoring(app.state.session_factory, app.state.runtime.outbox, settings, run_id), name=f"scoring-{run_id}")


async def create_scoring(session: AsyncSession, request: ScoringCreate, settings: ClvSettings) -> sa.Row:
    """Check the fit is usable and queue the run's row in the caller's transaction (launched after the commit)."""
    if request.fit_id is not None:
        fit = await fits.get_fit(session, request.fit_id)
        if fit is None:
            raise NotFound(f"no model fit {request.fit_id}")
    else:
        latest = await fits.latest_succeeded(session, request.currency, converged_only=True)
        latest = [r for r in sorted(latest, key=lambda r: r.version, reverse=True) if not fit_problems(r)]
        if not latest:
            raise FitNotUsable(f"no usable model fit for {request.currency}: fit one first")
        fit = latest[0]
    if fit.status != "succeeded":
        raise FitNotUsable(f"fit {fit.id} is {fit.status}")
    if fit.currency != request.currency:
        raise FitNotUsable(f"fit {fit.id} is for {fit.currency}, not {request.currency}")
    if reasons := fit_problems(fit):
        raise FitNotUsable(f"fit {fit.id} is not usable: {'; '.join(reasons)}")
    scoring_settings = {
        "current_months": request.current_months or settings.current_months,
        "horizon_months": request.horizon_months or settings.horizon_months,
        "monthly_discount_rate": request.monthly_discount_rate
        if request.monthly_discount_rate is not None
        else settings.monthly_discount_rate,
        "margin": request.margin or settings.margin,
        "wallet_quantile": request.wallet_quantile or settings.wallet_quantile,
        "time_unit_days": fit.time_unit_days,
    }
    if scoring_settings["horizon_months"] < scoring_settings["current_months"]:
        raise FitNotUsable("horizon_months must be at least current_months")
    await _refuse_if_unfinished(session, request.currency)
    try:
        async with session.begin_nested():
            row = (
                await session.execute(
                    sa.insert(scoring_run)
                    .values(
                        id=uuid.uuid4(),
                        fit_id=fit.id,
                        status="queued",
                        currency=request.currency,
                        as_of=datetime.now(UTC),
                        settings=scoring_settings,
                    )
                    .returning(scoring_run)
                )
            ).one()
    except sa.exc.IntegrityError:  # another request won the race for the one-unfinished index
        await _refuse_if_unfinished(session, request.currency)
        raise
    return row


async def _refuse_if_unfinished(session: AsyncSession, currency: str) -> None:
    """One unfinished scoring run per currency (409 naming it): runs are heavy and must not queue without limit."""
    running = (
        await session.execute(
            sa.select(scoring_run.c.id, scoring_run.c.status).where(
                scoring_run.c.currency == currency, scoring_run.c.status.in_(jobs.UNFINISHED)
            )
        )
    ).first()
    if running is not None:
        raise jobs.in_progress("scoring run", currency, running.id, running.status)


# IF NOT EXISTS + TRUNCATE: incremental scoring may stage several currencies in one consumer transaction.
STAGE = [
    sa.text("""
CREATE TEMPORARY TABLE IF NOT EXISTS scored (
    customer_id uuid PRIMARY KEY, probability_alive float8, expected_purchases float8, expected_spend numeric(18,4),
    historical_value numeric(18,4), current_value numeric(18,4), potential_value numeric(18,4), clv numeric(18,4),
    tier text, retention_value numeric(18,4)) ON COMMIT DROP
"""),
    sa.text("TRUNCATE scored"),
]
STAGE_ROWS = sa.text("""
INSERT INTO scored SELECT * FROM unnest(
    CAST(:ids AS uuid[]), CAST(:p_alive AS float8[]), CAST(:purchases AS float8[]), CAST(:spend AS numeric[]),
    CAST(:historical AS numeric[]), CAST(:current AS numeric[]), CAST(:potential AS numeric[]),
    CAST(:clv AS numeric[]), CAST(:tier AS text[]), CAST(:retention AS numeric[]))
""")
MATERIAL_CHANGES = sa.text("""
SELECT s.*, v.tier AS previous_tier FROM scored s
LEFT JOIN clv.customer_value v ON v.customer_id = s.customer_id AND v.currency = :currency
WHERE v.customer_id IS NULL OR v.tier <> s.tier
   OR abs(s.clv - v.clv) >= greatest(:absolute, :relative * abs(v.clv))
   OR abs(s.historical_value - v.historical_value) >= greatest(:absolute, :relative * abs(v.historical_value))
""")
UPSERT_VALUES = sa.text("""
INSERT INTO clv.customer_value AS v (customer_id, currency, scoring_run_id, fit_id, probability_alive,
    expected_purchases, expected_spend, historical_value, current_value, potential_value, retention_value, clv, tier,
    scored_at)
SELECT customer_id, :currency, :run_id, :fit_id, probability_alive, expected_purchases, expected_spend,
       historical_value, current_value, potential_value, retention_value, clv, tier, :scored_at FROM scored
ORDER BY customer_id  -- one lock order for runs and incremental scoring of the same customers
ON CONFLICT (customer_id, currency) DO UPDATE SET
    scoring_run_id = EXCLUDED.scoring_run_id, fit_id = EXCLUDED.fit_id, probability_alive = EXCLUDED.probability_alive,
    expected_purchases = EXCLUDED.expected_purchases, expected_spend = EXCLUDED.expected_spend,
    historical_value = EXCLUDED.historical_value, current_value = EXCLUDED.current_value,
    potential_value = EXCLUDED.potential_value, retention_value = EXCLUDED.retention_value, clv = EXCLUDED.clv,
    tier = EXCLUDED.tier,
    scored_at = EXCLUDED.scored_at, updated_at = now()
""")
# Customers who no longer have a purchase in the currency (all cancelled, erased) lose their stored value
# (of those scored: everyone in a run, the touched customers in incremental scoring).
DROP_UNSCORED = sa.text("""
DELETE FROM clv.customer_value v WHERE v.currency = :currency
AND (CAST(:only AS uuid[]) IS NULL OR v.customer_id = ANY(CAST(:only AS uuid[])))
AND NOT EXISTS (SELECT 1 FROM scored s WHERE s.customer_id = v.customer_id)
""")
# A value that is published gets the next version of the owner's order. The rows are locked by the upsert
# above in this transaction, so a customer's versions increase in the order its values commit.
NEXT_VERSIONS = sa.text("""
UPDATE clv.customer_value SET version = nextval('clv.value_version_seq')
WHERE currency = :currency AND customer_id = ANY(CAST(:ids AS uuid[]))
RETURNING customer_id, version
""")
# The accepted fit of each currency the customers have a purchase or a value in: the one its latest succeeded
# scoring run used, with that run's settings and tier thresholds (none: no run of that currency succeeded yet).
LATEST_RUNS = sa.text("""
SELECT r.* FROM (SELECT currency FROM clv.purchase WHERE customer_id = ANY(CAST(:ids AS uuid[]))
                 UNION SELECT currency FROM clv.customer_value WHERE customer_id = ANY(CAST(:ids AS uuid[]))) c
CROSS JOIN LATERAL (
    SELECT * FROM clv.scoring_run WHERE currency = c.currency AND status = 'succeeded' AND tier_thresholds IS NOT NULL
    ORDER BY finished_at DESC NULLS LAST, created_at DESC LIMIT 1) r
ORDER BY r.currency
""")


async def run_scoring(
    session_factory: async_sessionmaker[AsyncSession], outbox: Outbox, settings: ClvSettings, run_id: uuid.UUID
) -> None:
    """Runs the scoring if this replica claims it. Resumable: values, events and the succeeded status are written
    in one transaction, so a run restarted after a crash publishes nothing twice."""
    async with session_factory() as session:
        if not await jobs.claim(session, scoring_run, run_id):
            return
        run = (await session.execute(sa.select(scoring_run).where(scoring_run.c.id == run_id))).one()
        fit = await fits.get_fit(session, run.fit_id)
        await _update(session, run_id, progress=0.05, started_at=sa.func.now())
        await session.commit()
    async with jobs.hold(session_factory, scoring_run, run_id):
        await _run_scoring(session_factory, outbox, settings, run, fit, run_id)


async def _run_scoring(
    session_factory: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    settings: ClvSettings,
    run: sa.Row,
    fit: sa.Row | None,
    run_id: uuid.UUID,
) -> None:
    try:
        if fit is None:  # never so (fits are not deleted, a run is made for an existing one): fail the run, not the task
            raise LookupError(f"model fit {run.fit_id} not found")
        s = run.settings
        async with session_factory() as session:
            end_day = run.as_of.astimezone(UTC).date()
            stats = await load_statistics(session, run.currency, end_day, end_day, s["time_unit_days"])
            await _update(session, run_id, progress=0.3, customers=len(stats))
            await session.commit()
        if len(stats) == 0:
            computed = None
        else:
            computed = await asyncio.to_thread(compute_values, fit.model, fit.transactions["params"], fit.spend, stats, s)
        async with session_factory() as session:
            published = await _store(session, outbox, settings, run.currency, run.id, fit, stats, computed)
            await _update(
                session,
                run_id,
                status="succeeded",
                progress=1.0,
                finished_at=sa.func.now(),
                lease_until=None,
                events_published=published,
                tier_thresholds=computed["thresholds"] if computed else None,
            )
            await session.commit()
    except Exception as exc:  # a job reports its failure on its resource
        log.exception("scoring %s failed", run_id)
        # A ValueError is a prediction refusing its inputs (NaN, negative): its sentence says which.
        detail = str(exc) if isinstance(exc, DomainError | ValueError) else f"internal error: {type(exc).__name__}"
        async with session_factory() as session:
            await _update(session, run_id, status="failed", error=detail, finished_at=sa.func.now(), lease_until=None)
            await session.commit()


async def score_customers(session: AsyncSession, outbox: Outbox, settings: ClvSettings, customer_ids: list[uuid.UUID]) -> int:
    """Scores these customers (whose purchases just changed) from each currency's accepted fit, in the caller's
    transaction, and publishes the values that changed materially: a first purchase gets a value without anyone
    posting a scoring run. Nothing happens in a currency no scoring run has succeeded in yet."""
    published = 0
    ids = sorted(set(customer_ids))
    for run in (await session.execute(LATEST_RUNS, {"ids": ids})).all():
        currency = run.currency
        fit = await fits.get_fit(session, run.fit_id)
        if fit is None:
            continue
        s = run.settings
        today = datetime.now(UTC).date()
        stats = await load_statistics(session, currency, today, today, s["time_unit_days"], customer_ids=ids)
        try:
            computed = (
                compute_values(fit.model, fit.transactions["params"], fit.spend, stats, s, thresholds=run.tier_thresholds)
                if len(stats)
                else None
            )
        except (FitNotUsable, ValueError) as exc:  # the next refit fixes it; the purchases themselves are stored
            log.warning("incremental scoring in %s skipped: %s", currency, exc)
            continue
        published += await _store(session, outbox, settings, currency, run.id, fit, stats, computed, only=ids)
    return published


async def _store(
    session: AsyncSession,
    outbox: Outbox,
    settings: ClvSettings,
    currency: str,
    run_id: uuid.UUID,
    fit,
    stats: Statistics,
    computed: dict | None,
    only: list[uuid.UUID] | None = None,
) -> int:
    """Writes the scored values (of everyone in the currency, or of `only`) and publishes the material changes."""
    for statement in STAGE:
        await session.execute(statement)
    if computed is not None:
        v = computed["values"]
        for start in range(0, len(stats), CHUNK):
            part = slice(start, start + CHUNK)
            await session.execute(
                STAGE_ROWS,
                {
                    "ids": stats.customer_ids[part],
                    "p_alive": v["probability_alive"][part].tolist(),
                    "purchases": v["expected_purchases"][part].tolist(),
                    "spend": np.round(v["expected_spend"][part], 4).tolist(),
                    "historical": np.round(v["historical_value"][part], 4).tolist(),
                    "current": np.round(v["current_value"][part], 4).tolist(),
                    "potential": np.round(v["potential_value"][part], 4).tolist(),
                    "clv": np.round(v["clv"][part], 4).tolist(),
                    "retention": np.round(v["retention_value"][part], 4).tolist(),
                    "tier": v["tier"][part].tolist(),
                },
            )
    changes = (
        await session.execute(
            MATERIAL_CHANGES,
            {
                "currency": currency,
                "absolute": settings.value_change_absolute,
                "relative": settings.value_change_relative,
            },
        )
    ).all()
    scored_at = datetime.now(UTC)
    await session.execute(UPSERT_VALUES, {"currency": currency, "run_id": run_id, "fit_id": fit.id, "scored_at": scored_at})
    await session.execute(DROP_UNSCORED, {"currency": currency, "only": only})
    versions: dict[uuid.UUID, int] = (
        dict((await session.execute(NEXT_VERSIONS, {"currency": currency, "ids": [c.customer_id for c in changes]})).all())
        if changes
        else {}
    )
    model_version = f"{fit.model}-v{fit.version}"
    events = [
        Envelope.wrap(
            contracts.CustomerValueUpdated(
                customer_id=c.customer_id,
                currency=currency,
                historical_value=c.historical_value,
                current_value=c.current_value,
                potential_value=c.potential_value,
                clv=c.clv,
                probability_alive=min(max(c.probability_alive, 0.0), 1.0),
                expected_purchases=max(c.expected_purchases, 0.0),
                tier=c.tier,
                previous_tier=c.previous_tier,
                model_version=model_version,
                as_of=scored_at,
                version=versions[c.customer_id],
            ),
            source=contracts.SOURCE,
            subject=str(c.customer_id),
        )
        for c in changes
    ]
    for start in range(0, len(events), CHUNK):
        await outbox.add(session, CLV_EVENTS, events[start : start + CHUNK])
    return len(events)


async def _update(session: AsyncSession, run_id: uuid.UUID, **values) -> None:
    await session.execute(sa.update(scoring_run).where(scoring_run.c.id == run_id).values(updated_at=sa.func.now(), **values))


def to_read(row: sa.Row) -> ScoringRead:
    return ScoringRead(
        id=row.id,
        fit_id=row.fit_id,
        status=row.status,
        progress=row.progress,
        currency=row.currency,
        as_of=row.as_of,
        settings=row.settings,
        customers=row.customers,
        events_published=row.events_published,
        tier_thresholds=row.tier_thresholds,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        created_at=row.created_at,
    )


async def get(session: AsyncSession, run_id: uuid.UUID) -> ScoringRead:
    row = (await session.execute(sa.select(scoring_run).where(scoring_run.c.id == run_id))).one_or_none()
    if row is None:
        raise NotFound(f"no scoring run {run_id}")
    return to_read(row)


async def tiers(session: AsyncSession, currency: str) -> TierReport:
    v = customer_value
    rows = (
        await session.execute(
            sa.select(
                v.c.tier,
                sa.func.count().label("customers"),
                sa.func.min(v.c.clv).label("min_clv"),
                sa.func.sum(v.c.clv).label("total_clv"),
                sa.func.sum(v.c.historical_value).label("historical"),
                sa.func.sum(v.c.potential_value).label("potential"),
            )
            .where(v.c.currency == currency)
            .group_by(v.c.tier)
        )
    ).all()
    run_id = (
        await session.execute(
            sa.select(scoring_run.c.id)
            .where(scoring_run.c.currency == currency, scoring_run.c.status == "succeeded")
            .order_by(scoring_run.c.created_at.desc())
            .limit(1)
        )
    ).scalar()
    order = {"platinum": 0, "gold": 1, "silver": 2, "bronze": 3}
    return TierReport(
        currency=currency,
        scoring_run_id=run_id,
        tiers=[
            TierSummary(
                tier=r.tier,
                customers=r.customers,
                min_clv=float(r.min_clv),
                total_clv=float(r.total_clv),
                total_historical_value=float(r.historical),
                total_potential_value=float(r.potential),
            )
            for r in sorted(rows, key=lambda r: order.get(r.tier, 9))
        ],
    )


VALUE_STATES = sa.text("""
SELECT customer_id, currency, clv, tier, probability_alive, scored_at AS as_of, version FROM clv.customer_value
WHERE customer_id IN (
    SELECT DISTINCT customer_id FROM clv.customer_value
    WHERE (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
      AND (CAST(:ids AS uuid[]) IS NULL OR customer_id = ANY(CAST(:ids AS uuid[])))
    ORDER BY customer_id LIMIT :limit)
ORDER BY customer_id, currency
""")


async def value_states(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int, customer_ids: list[uuid.UUID] | None
) -> tuple[list[sa.Row], bool]:
    """Every currency's value of the next `limit` customers after `after` (or of the given customers), and
    whether the page is full (more may follow)."""
    rows = list(await session.execute(VALUE_STATES, {"after": after, "limit": limit, "ids": customer_ids or None}))
    return rows, len({r.customer_id for r in rows}) == limit
