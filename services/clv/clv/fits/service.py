"""Fitting as a job: load one currency's statistics, fit in a worker thread, store the model version."""

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import jobs
from shared.problems import DomainError, NotFound

from clv.fits import repository
from clv.fits.models import model_fit
from clv.fits.schemas import (
    AUTO_HOLDOUT_DAYS,
    CandidateReport,
    Comparison,
    ComparisonRow,
    Diagnostics,
    FitCreate,
    FitRead,
    HoldoutBucket,
    ModelReport,
    Prediction,
    PredictionRequest,
    PredictionResponse,
    RequestedModel,
    Selection,
)
from clv.jobs import launch
from clv.probability_models import MODELS, FitError, FitResult, GammaGamma, PopulationMeanSpend, collapse
from clv.probability_models.value import DAYS_PER_MONTH
from clv.settings import ClvSettings
from clv.transaction_summary.repository import Statistics, load_statistics

log = logging.getLogger(__name__)
BUCKETS = 7  # calibration frequency 0…6 and "7+"


class InvalidFitRequest(DomainError):
    status, slug, title = 422, "invalid-fit-request", "Invalid fit request"


class InvalidPredictionInput(DomainError):
    status, slug, title = 422, "invalid-prediction-input", "The model cannot predict from these inputs"


class FitNotUsable(DomainError):
    status, slug, title = 409, "fit-not-usable", "The model fit cannot be used"


def report(result: FitResult) -> dict:
    if not np.isfinite(result.log_likelihood):
        raise FitError(f"{result.model}: the likelihood could not be evaluated at any point the optimiser tried")
    return ModelReport(
        model=result.model,
        params=result.params,
        std_errors=result.std_errors,
        log_likelihood=result.log_likelihood,
        aic=result.aic,
        bic=result.bic,
        converged=result.converged,
        iterations=result.iterations,
        message=result.message,
        customers=result.customers,
        rows=result.rows,
        usable=result.usable,
        problems=list(result.problems),
    ).model_dump()


def holdout_diagnostics(
    model, stats: Statistics, holdout_units: float, holdout_days: int, rows: tuple | None = None
) -> dict | None:
    """Predicted against actual holdout repeat purchases, by calibration frequency. With `rows` (the distinct
    (x, t_x, T) rows and each customer's row) the model predicts once per row instead of once per customer."""
    if rows is None:
        predicted = model.expected_purchases(holdout_units, stats.x, stats.t_x, stats.T)
    else:
        summary, inverse = rows
        predicted = model.expected_purchases(holdout_units, summary.x, summary.t_x, summary.T)[inverse]
    if not np.all(np.isfinite(predicted)):
        return None  # JSON has no NaN; a model that cannot predict every customer gets no diagnostics
    bucket = np.minimum(stats.x, BUCKETS).astype(int)
    counts = np.bincount(bucket, minlength=BUCKETS + 1)
    actual_sum = np.bincount(bucket, weights=stats.holdout_x, minlength=BUCKETS + 1)
    predicted_sum = np.bincount(bucket, weights=predicted, minlength=BUCKETS + 1)
    buckets = [
        HoldoutBucket(
            frequency=f"{b}+" if b == BUCKETS else str(b),
            customers=int(counts[b]),
            actual_mean=float(actual_sum[b] / counts[b]),
            predicted_mean=float(predicted_sum[b] / counts[b]),
        )
        for b in range(BUCKETS + 1)
        if counts[b]
    ]
    return Diagnostics(
        holdout_days=holdout_days,
        actual_total=float(stats.holdout_x.sum()),
        predicted_total=float(predicted.sum()),
        mean_absolute_error=float(np.mean(np.abs(predicted - stats.holdout_x))),
        buckets=buckets,
    ).model_dump()


class NoUsableModel(FitError):
    """A model choice found no candidate the data support; the selection says why for each."""

    def __init__(self, message: str, selection: dict) -> None:
        super().__init__(message)
        self.selection = selection


SELECTION_CRITERION = (
    "lowest mean absolute error of holdout repeat purchases per customer among the usable "
    "candidates (ties: lower AIC), each fitted on the calibration period"
)


def fit_statistics(model_name: str, stats: Statistics, holdout_units: float, holdout_days: int, unit_days: float = 1.0) -> dict:
    """The CPU part (runs in a worker thread): transaction model(s), spend model, diagnostics.

    `auto` fits every transaction model on the calibration period, measures each on the holdout, and keeps
    the usable one with the lowest holdout error; the others' figures stay in `selection`."""
    if len(stats) == 0:
        raise FitError("need at least 2 customers with purchases in the calibration period, got none")
    # t_x and T are whole days in model units: they pack into one integer key (see `collapse`).
    # With a holdout, each customer's row is kept too: predictions then run once per distinct row.
    summary, inverse = collapse(stats.x, stats.t_x, stats.T, resolution=1.0 / unit_days, with_inverse=holdout_days > 0)
    rows = (summary, inverse) if inverse is not None else None
    out: dict = {"spend": None, "spend_error": None, "selection": None}
    if model_name == RequestedModel.AUTO:
        chosen, out["selection"] = _choose(summary, stats, holdout_units, holdout_days, rows)
        model, result, out["diagnostics"] = chosen
    else:
        model, result = MODELS[model_name].fit(summary)
        out["diagnostics"] = holdout_diagnostics(model, stats, holdout_units, holdout_days, rows) if holdout_days > 0 else None
    out["model"], out["transactions"] = result.model, report(result)
    try:
        _, spend = GammaGamma.fit(stats.x, stats.mean_repeat_spend)
        out["spend"] = report(spend)
        if not spend.usable:
            # Customers that do not differ in spend drive p, q, γ off together; the model's limit is the
            # population's mean spend for everyone, which scoring then uses (docs/clv.md, Fits the data cannot
            # support).
            out["spend"]["fallback_mean_spend"] = PopulationMeanSpend.of(stats.x, stats.mean_repeat_spend).mean_spend
    except FitError as exc:
        out["spend_error"] = str(exc)
    return out


def _choose(summary, stats: Statistics, holdout_units: float, holdout_days: int, rows: tuple | None) -> tuple[tuple, dict]:
    fitted, candidates = {}, []
    for name, cls in MODELS.items():
        try:
            model, result = cls.fit(summary)
            report(result)  # raises when the likelihood could not be evaluated anywhere
        except FitError as exc:
            candidates.append(CandidateReport(model=name, usable=False, problems=[str(exc)]))
            continue
        diagnostics = holdout_diagnostics(model, stats, holdout_units, holdout_days, rows)
        problems = list(result.problems)
        if diagnostics is None:
            problems.append("its predictions are not finite for every customer")
        candidates.append(
            CandidateReport(
                model=name,
                usable=not problems,
                problems=problems,
                log_likelihood=result.log_likelihood,
                aic=result.aic,
                bic=result.bic,
                holdout_mean_absolute_error=diagnostics["mean_absolute_error"] if diagnostics else None,
                predicted_total=diagnostics["predicted_total"] if diagnostics else None,
                actual_total=diagnostics["actual_total"] if diagnostics else None,
            )
        )
        fitted[name] = (model, result, diagnostics)
    usable = [c for c in candidates if c.usable]
    best = min(usable, key=lambda c: (c.holdout_mean_absolute_error, c.aic)) if usable else None
    selection = Selection(criterion=SELECTION_CRITERION, chosen=best.model if best else None, candidates=candidates).model_dump(
        mode="json"
    )
    if best is None:
        raise NoUsableModel(
            "no candidate model is usable on these data: " + "; ".join(f"{c.model}: {', '.join(c.problems)}" for c in candidates),
            selection,
        )
    return fitted[best.model], selection


async def launch_fit(app: FastAPI, fit_id: uuid.UUID) -> None:
    """Run the fit in the background; called once its row has committed (a response background task)."""
    launch(app, run_fit(app.state.session_factory, fit_id), name=f"fit-{fit_id}")


async def create_fit(session: AsyncSession, request: FitCreate, settings: ClvSettings) -> sa.Row:
    """The fit's row, queued in the caller's transaction (the job, launched after the commit, reads it in its
    own session); 409 while the currency has one unfinished (a fit is a heavy job: queueing them without limit
    would let one key occupy the service)."""
    as_of = request.as_of or datetime.now(UTC)
    holdout_days = request.holdout_days
    if holdout_days is None:
        holdout_days = AUTO_HOLDOUT_DAYS if request.model == RequestedModel.AUTO else 0
    if request.model == RequestedModel.AUTO and holdout_days == 0:
        raise InvalidFitRequest("choosing the model (`auto`) needs a holdout: give holdout_days > 0 or name a model")
    calibration_end = as_of - timedelta(days=holdout_days)
    await _refuse_if_unfinished(session, request.currency)
    try:
        async with session.begin_nested():
            row = await repository.insert_fit(
                session,
                {
                    "id": uuid.uuid4(),
                    "status": "queued",
                    "model": request.model.value,
                    "currency": request.currency,
                    "time_unit_days": request.time_unit_days or settings.time_unit_days,
                    "as_of": as_of,
                    "holdout_days": holdout_days,
                    "calibration_end": calibration_end,
                },
            )
    except sa.exc.IntegrityError:  # another request won the race for the one-unfinished index
        await _refuse_if_unfinished(session, request.currency)
        raise
    return row


async def _refuse_if_unfinished(session: AsyncSession, currency: str) -> None:
    if (running := await repository.unfinished_fit(session, currency)) is not None:
        raise jobs.in_progress("model fit", currency, running.id, running.status)


async def run_fit(session_factory: async_sessionmaker[AsyncSession], fit_id: uuid.UUID) -> None:
    """Runs the fit if this replica claims it (another replica may have, or it may be finished)."""
    async with session_factory() as session:
        if not await jobs.claim(session, model_fit, fit_id):
            return
        fit = await repository.get_fit(session, fit_id)
        assert fit is not None, "claimed just now in this transaction"
        await repository.update_fit(session, fit_id, progress=0.05, started_at=sa.func.now())
        await session.commit()
    async with jobs.hold(session_factory, model_fit, fit_id):
        await _run_fit(session_factory, fit, fit_id)


async def _run_fit(session_factory: async_sessionmaker[AsyncSession], fit: sa.Row, fit_id: uuid.UUID) -> None:
    try:
        async with session_factory() as session:
            end_day = fit.as_of.astimezone(UTC).date()
            stats = await load_statistics(
                session, fit.currency, fit.calibration_end.astimezone(UTC).date(), end_day, fit.time_unit_days
            )
            await repository.update_fit(
                session, fit_id, progress=0.3, customers=len(stats), repeat_customers=int((stats.x > 0).sum())
            )
            await session.commit()
        results = await asyncio.to_thread(
            fit_statistics, fit.model, stats, fit.holdout_days / fit.time_unit_days, fit.holdout_days, fit.time_unit_days
        )
        async with session_factory() as session:
            await repository.update_fit(
                session,
                fit_id,
                status="succeeded",
                progress=1.0,
                finished_at=sa.func.now(),
                lease_until=None,
                model=results["model"],
                transactions=results["transactions"],
                spend=results["spend"] or {"error": results["spend_error"]},
                diagnostics=results["diagnostics"],
                selection=results["selection"],
            )
            await session.commit()
    except NoUsableModel as exc:
        await _fail(session_factory, fit_id, str(exc), selection=exc.selection)
    except FitError as exc:
        await _fail(session_factory, fit_id, str(exc))
    except Exception as exc:  # a job reports its failure on its resource instead of vanishing
        log.exception("fit %s failed", fit_id)
        await _fail(session_factory, fit_id, f"internal error: {type(exc).__name__}")


async def _fail(
    session_factory: async_sessionmaker[AsyncSession], fit_id: uuid.UUID, error: str, selection: dict | None = None
) -> None:
    async with session_factory() as session:
        await repository.update_fit(
            session, fit_id, status="failed", error=error, finished_at=sa.func.now(), lease_until=None, selection=selection
        )
        await session.commit()


def problems(row: sa.Row) -> list[str]:
    """Why a succeeded fit must not score (empty: usable). Fits stored before `usable` existed are judged by
    convergence, as they were."""
    t, spend = row.transactions or {}, row.spend or {}
    found = [f"transaction model: {p}" for p in t.get("problems", [])]
    if not t.get("converged", False) and not t.get("problems"):
        found.append(f"transaction model: not converged: {t.get('message')}")
    if "params" not in spend:
        found.append(f"spend model: {spend.get('error') or 'missing'}")
    elif spend.get("fallback_mean_spend") is None:
        found += [f"spend model: {p}" for p in spend.get("problems", [])]
        if spend["params"]["q"] <= 1:
            found.append("spend model: q <= 1 (infinite mean spend)")
    return found


def spend_model(spend: dict) -> GammaGamma | PopulationMeanSpend:
    """The spend model of a fit's spend report (or of bare Gamma-Gamma parameters): Gamma-Gamma when usable,
    else the population's mean spend the fit fell back on."""
    if "params" not in spend:
        return GammaGamma.from_params(spend)
    if spend.get("usable", True) and spend["params"]["q"] > 1:
        return GammaGamma.from_params(spend["params"])
    if spend.get("fallback_mean_spend") is not None:
        return PopulationMeanSpend(spend["fallback_mean_spend"])
    raise FitNotUsable("the spend model is not usable and has no mean spend to fall back on")


def to_read(row: sa.Row) -> FitRead:
    spend = row.spend or {}
    succeeded = row.status == "succeeded"
    return FitRead(
        id=row.id,
        version=row.version,
        status=row.status,
        progress=row.progress,
        model=row.model,
        currency=row.currency,
        time_unit_days=row.time_unit_days,
        as_of=row.as_of,
        holdout_days=row.holdout_days,
        calibration_end=row.calibration_end,
        customers=row.customers,
        repeat_customers=row.repeat_customers,
        transactions=row.transactions,
        spend=spend if "params" in spend else None,
        spend_error=spend.get("error"),
        diagnostics=row.diagnostics,
        selection=row.selection,
        usable=not problems(row) if succeeded else None,
        problems=problems(row) if succeeded else [],
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        created_at=row.created_at,
    )


async def get(session: AsyncSession, fit_id: uuid.UUID) -> FitRead:
    row = await repository.get_fit(session, fit_id)
    if row is None:
        raise NotFound(f"no model fit {fit_id}")
    return to_read(row)


async def compare(session: AsyncSession, currency: str, fit_ids: list[uuid.UUID]) -> Comparison:
    if fit_ids:
        found = [await repository.get_fit(session, i) for i in fit_ids]
        missing = [str(i) for i, r in zip(fit_ids, found, strict=True) if r is None]
        if missing:
            raise NotFound(f"no model fit {', '.join(missing)}")
        rows = [r for r in found if r is not None and r.currency == currency and r.status == "succeeded"]
    else:
        rows = await repository.latest_succeeded(session, currency)
    out = []
    for r in rows:
        t = r.transactions
        mae = r.diagnostics["mean_absolute_error"] if r.diagnostics else None
        out.append(
            ComparisonRow(
                fit_id=r.id,
                version=r.version,
                model=r.model,
                customers=r.customers,
                log_likelihood=t["log_likelihood"],
                aic=t["aic"],
                bic=t["bic"],
                converged=t["converged"],
                holdout_mean_absolute_error=mae,
            )
        )
    # Information criteria compare fits of the same data only; holdout error compares any with a holdout.
    same_data = {(r.calibration_end, r.customers, r.time_unit_days) for r in rows}
    comparable = [c for c in out if c.converged] if len(same_data) == 1 else []
    with_holdout = [(mae, c.fit_id) for c in out if (mae := c.holdout_mean_absolute_error) is not None and c.converged]
    return Comparison(
        currency=currency,
        fits=out,
        best_by_aic=min(comparable, key=lambda c: c.aic).fit_id if comparable else None,
        best_by_bic=min(comparable, key=lambda c: c.bic).fit_id if comparable else None,
        best_by_holdout=min(with_holdout, key=lambda h: h[0])[1] if with_holdout else None,
        note="AIC/BIC rank converged fits only when all were fitted on the same data (calibration end, customers, "
        "time unit); holdout error ranks fits that kept a holdout.",
    )


async def predict(session: AsyncSession, fit_id: uuid.UUID, request: PredictionRequest) -> PredictionResponse:
    """P(alive), expected purchases over `months` and expected spend for given histories, from a usable fit."""
    row = await repository.get_fit(session, fit_id)
    if row is None:
        raise NotFound(f"no model fit {fit_id}")
    if row.status != "succeeded" or (reasons := problems(row)):
        raise FitNotUsable(
            f"fit {fit_id} is {row.status}" if row.status != "succeeded" else f"fit {fit_id} is not usable: {'; '.join(reasons)}"
        )
    model = MODELS[row.model].from_params(row.transactions["params"])
    c = request.customers
    x, t_x, T, zbar = (np.array([getattr(i, k) for i in c], dtype=np.float64) for k in ("x", "t_x", "T", "mean_spend"))
    try:
        alive = model.p_alive(x, t_x, T)
        purchases = model.expected_purchases(request.months * DAYS_PER_MONTH / row.time_unit_days, x, t_x, T)
        spend = spend_model(row.spend).expected_spend(x, zbar)
    except ValueError as exc:  # the model refusing NaN, negative or inconsistent inputs
        raise InvalidPredictionInput(str(exc)) from None
    return PredictionResponse(
        fit_id=row.id,
        model=row.model,
        months=request.months,
        predictions=[
            Prediction(probability_alive=float(a), expected_purchases=float(p), expected_spend=float(m))
            for a, p, m in zip(alive, purchases, spend, strict=True)
        ],
    )
