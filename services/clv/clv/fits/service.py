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
from clv.fits.schemas import Comparison, ComparisonRow, Diagnostics, FitCreate, FitRead, HoldoutBucket, ModelReport
from clv.jobs import launch
from clv.models import MODELS, FitError, FitResult, GammaGamma, collapse
from clv.settings import ClvSettings
from clv.transaction_summary.repository import Statistics, load_statistics

log = logging.getLogger(__name__)
BUCKETS = 7  # calibration frequency 0…6 and "7+"


class InvalidFitRequest(DomainError):
    status, slug, title = 422, "invalid-fit-request", "Invalid fit request"


def report(result: FitResult) -> dict:
    if not np.isfinite(result.log_likelihood):
        raise FitError(f"{result.model}: the likelihood could not be evaluated at any point the optimiser tried")
    return ModelReport(model=result.model, params=result.params, std_errors=result.std_errors,
                       log_likelihood=result.log_likelihood, aic=result.aic, bic=result.bic,
                       converged=result.converged, iterations=result.iterations, message=result.message,
                       customers=result.customers, rows=result.rows).model_dump()


def holdout_diagnostics(model, stats: Statistics, holdout_units: float, holdout_days: int) -> dict | None:
    """Predicted against actual holdout repeat purchases, by calibration frequency."""
    predicted = model.expected_purchases(holdout_units, stats.x, stats.t_x, stats.T)
    if not np.all(np.isfinite(predicted)):
        return None  # JSON has no NaN; a model that cannot predict every customer gets no diagnostics
    bucket = np.minimum(stats.x, BUCKETS).astype(int)
    counts = np.bincount(bucket, minlength=BUCKETS + 1)
    actual_sum = np.bincount(bucket, weights=stats.holdout_x, minlength=BUCKETS + 1)
    predicted_sum = np.bincount(bucket, weights=predicted, minlength=BUCKETS + 1)
    buckets = [HoldoutBucket(frequency=f"{b}+" if b == BUCKETS else str(b), customers=int(counts[b]),
                             actual_mean=float(actual_sum[b] / counts[b]), predicted_mean=float(predicted_sum[b] / counts[b]))
               for b in range(BUCKETS + 1) if counts[b]]
    return Diagnostics(holdout_days=holdout_days, actual_total=float(stats.holdout_x.sum()),
                       predicted_total=float(predicted.sum()),
                       mean_absolute_error=float(np.mean(np.abs(predicted - stats.holdout_x))),
                       buckets=buckets).model_dump()


def fit_statistics(model_name: str, stats: Statistics, holdout_units: float, holdout_days: int,
                   unit_days: float = 1.0) -> dict:
    """The CPU part (runs in a worker thread): transaction model, spend model, diagnostics."""
    if len(stats) == 0:
        raise FitError("need at least 2 customers with purchases in the calibration period, got none")
    # t_x and T are whole days in model units: they pack into one integer key (see `collapse`).
    summary, _ = collapse(stats.x, stats.t_x, stats.T, resolution=1.0 / unit_days, with_inverse=False)
    model, result = MODELS[model_name].fit(summary)
    out: dict = {"transactions": report(result), "spend": None, "spend_error": None, "diagnostics": None}
    try:
        _, spend = GammaGamma.fit(stats.x, stats.mean_repeat_spend)
        out["spend"] = report(spend)
    except FitError as exc:
        out["spend_error"] = str(exc)
    if holdout_days > 0:
        out["diagnostics"] = holdout_diagnostics(model, stats, holdout_units, holdout_days)
    return out


async def start_fit(app: FastAPI, session: AsyncSession, request: FitCreate, settings: ClvSettings) -> FitRead:
    row = await create_fit(session, request, settings)
    launch(app, run_fit(app.state.session_factory, row.id), name=f"fit-{row.id}")
    return to_read(row)


async def create_fit(session: AsyncSession, request: FitCreate, settings: ClvSettings) -> sa.Row:
    """The fit's row, committed (the job reads it in its own session); 409 while the currency has one unfinished
    (a fit is a heavy job: queueing them without limit would let one key occupy the service)."""
    as_of = request.as_of or datetime.now(UTC)
    calibration_end = as_of - timedelta(days=request.holdout_days)
    await _refuse_if_unfinished(session, request.currency)
    try:
        row = await repository.insert_fit(session, {
            "id": uuid.uuid4(), "status": "queued", "model": request.model.value, "currency": request.currency,
            "time_unit_days": request.time_unit_days or settings.time_unit_days, "as_of": as_of,
            "holdout_days": request.holdout_days, "calibration_end": calibration_end,
        })
        await session.commit()
    except sa.exc.IntegrityError:  # another request won the race for the one-unfinished index
        await session.rollback()
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
        await repository.update_fit(session, fit_id, progress=0.05, started_at=sa.func.now())
        await session.commit()
    async with jobs.hold(session_factory, model_fit, fit_id):
        await _run_fit(session_factory, fit, fit_id)


async def _run_fit(session_factory: async_sessionmaker[AsyncSession], fit: sa.Row, fit_id: uuid.UUID) -> None:
    try:
        async with session_factory() as session:
            end_day = fit.as_of.astimezone(UTC).date()
            stats = await load_statistics(session, fit.currency, fit.calibration_end.astimezone(UTC).date(), end_day,
                                          fit.time_unit_days)
            await repository.update_fit(session, fit_id, progress=0.3, customers=len(stats),
                                        repeat_customers=int((stats.x > 0).sum()))
            await session.commit()
        results = await asyncio.to_thread(fit_statistics, fit.model, stats,
                                          fit.holdout_days / fit.time_unit_days, fit.holdout_days, fit.time_unit_days)
        async with session_factory() as session:
            await repository.update_fit(session, fit_id, status="succeeded", progress=1.0, finished_at=sa.func.now(),
                                        lease_until=None,
                                        transactions=results["transactions"],
                                        spend=results["spend"] or {"error": results["spend_error"]},
                                        diagnostics=results["diagnostics"])
            await session.commit()
    except FitError as exc:
        await _fail(session_factory, fit_id, str(exc))
    except Exception as exc:  # noqa: BLE001 - a job reports its failure on its resource instead of vanishing
        log.exception("fit %s failed", fit_id)
        await _fail(session_factory, fit_id, f"internal error: {type(exc).__name__}")


async def _fail(session_factory: async_sessionmaker[AsyncSession], fit_id: uuid.UUID, error: str) -> None:
    async with session_factory() as session:
        await repository.update_fit(session, fit_id, status="failed", error=error, finished_at=sa.func.now(),
                                    lease_until=None)
        await session.commit()


def to_read(row: sa.Row) -> FitRead:
    spend = row.spend or {}
    return FitRead(
        id=row.id, version=row.version, status=row.status, progress=row.progress, model=row.model,
        currency=row.currency, time_unit_days=row.time_unit_days, as_of=row.as_of, holdout_days=row.holdout_days,
        calibration_end=row.calibration_end, customers=row.customers, repeat_customers=row.repeat_customers,
        transactions=row.transactions, spend=spend if "params" in spend else None, spend_error=spend.get("error"),
        diagnostics=row.diagnostics, error=row.error, started_at=row.started_at, finished_at=row.finished_at,
        created_at=row.created_at,
    )


async def get(session: AsyncSession, fit_id: uuid.UUID) -> FitRead:
    row = await repository.get_fit(session, fit_id)
    if row is None:
        raise NotFound(f"no model fit {fit_id}")
    return to_read(row)


async def compare(session: AsyncSession, currency: str, fit_ids: list[uuid.UUID]) -> Comparison:
    if fit_ids:
        rows = [await repository.get_fit(session, i) for i in fit_ids]
        missing = [str(i) for i, r in zip(fit_ids, rows, strict=True) if r is None]
        if missing:
            raise NotFound(f"no model fit {', '.join(missing)}")
        rows = [r for r in rows if r.currency == currency and r.status == "succeeded"]
    else:
        rows = await repository.latest_succeeded(session, currency)
    out = []
    for r in rows:
        t = r.transactions
        mae = r.diagnostics["mean_absolute_error"] if r.diagnostics else None
        out.append(ComparisonRow(fit_id=r.id, version=r.version, model=r.model, customers=r.customers,
                                 log_likelihood=t["log_likelihood"], aic=t["aic"], bic=t["bic"],
                                 converged=t["converged"], holdout_mean_absolute_error=mae))
    # Information criteria compare fits of the same data only; holdout error compares any with a holdout.
    same_data = {(r.calibration_end, r.customers, r.time_unit_days) for r in rows}
    comparable = [c for c in out if c.converged] if len(same_data) == 1 else []
    with_holdout = [c for c in out if c.holdout_mean_absolute_error is not None and c.converged]
    return Comparison(
        currency=currency, fits=out,
        best_by_aic=min(comparable, key=lambda c: c.aic).fit_id if comparable else None,
        best_by_bic=min(comparable, key=lambda c: c.bic).fit_id if comparable else None,
        best_by_holdout=min(with_holdout, key=lambda c: c.holdout_mean_absolute_error).fit_id if with_holdout else None,
        note="AIC/BIC rank converged fits only when all were fitted on the same data (calibration end, customers, "
             "time unit); holdout error ranks fits that kept a holdout.",
    )
