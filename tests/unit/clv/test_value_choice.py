"""Potential value from a wallet, fits the data cannot support, inputs predictions refuse, model choice."""

import csv
from pathlib import Path

import numpy as np
import pytest

from clv.fits.service import NoUsableModel, fit_statistics
from clv.probability_models import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD, Summary, simulate
from clv.probability_models.data import InvalidSummary
from clv.probability_models.fitting import FitResult, assess
from clv.scoring.service import compute_values
from clv.transaction_summary.repository import Statistics

CDNOW = Path(__file__).parent / "data" / "cdnow_customers_summary_with_transactions.csv"
SETTINGS = {
    "time_unit_days": 7.0,
    "margin": 0.3,
    "monthly_discount_rate": 0.01,
    "current_months": 12,
    "horizon_months": 60,
    "wallet_quantile": 0.9,
}


def _stats(x, t_x, T, zbar, holdout_x=None) -> Statistics:
    x, t_x, T, zbar = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T, zbar))
    return Statistics(
        customer_ids=list(range(len(x))),
        x=x,
        t_x=t_x,
        T=T,
        mean_repeat_spend=zbar,
        holdout_x=np.zeros_like(x) if holdout_x is None else np.asarray(holdout_x, dtype=np.float64),
        net_value=(x + 1) * np.maximum(zbar, 10.0),
    )


# --- potential value ----------------------------------------------------------------------------------------

# A one-time buyer, a customer with five purchases silent for 60 weeks, an active best customer.
ONE_TIME, LAPSED, BEST = 0, 1, 2
PEOPLE = {"x": [0, 5, 20], "t_x": [0, 10, 77], "T": [70, 70, 78], "zbar": [0, 30, 40]}


@pytest.mark.parametrize(
    "model",
    [BetaGeo(0.243, 4.414, 0.793, 2.426), ModifiedBetaGeo(0.52, 6.18, 0.89, 1.61), ParetoNBD(0.553, 10.578, 0.606, 11.669)],
)
def test_potential_is_wallet_headroom_not_retention_upside(model):
    spend = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    v = compute_values(
        model.name, dict(zip(model.param_names, model.values().tolist(), strict=True)), spend, _stats(**PEOPLE), SETTINGS
    )["values"]
    potential, retention = v["potential_value"], v["retention_value"]
    assert potential[ONE_TIME] > 0, "a one-time buyer could still spend: not zero (it was under BG/NBD)"
    assert potential[LAPSED] < potential[BEST], "a customer who has gone is worth less to develop than a best one"
    assert retention[LAPSED] > retention[BEST], "keeping the lapsed customer is where the retention upside is"
    # potential = m × P(alive) × (wallet − expected spend if alive) = (wallet ratio − 1) × CLV.
    from clv.probability_models import wallet_ratio

    ratio = wallet_ratio(model, GammaGamma(**spend), np.array(PEOPLE["x"], dtype=float), 0.9)
    np.testing.assert_allclose(potential, (ratio - 1) * v["clv"], rtol=1e-12)
    assert (ratio > 1).all() and ratio[ONE_TIME] > ratio[LAPSED] > ratio[BEST], "headroom shrinks as history grows"


def test_a_higher_wallet_quantile_means_more_potential():
    model = BetaGeo(0.243, 4.414, 0.793, 2.426)
    args = (
        "bgnbd",
        {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
        {"p": 6.25, "q": 3.74, "gamma": 15.44},
        _stats(**PEOPLE),
    )
    low = compute_values(*args, SETTINGS | {"wallet_quantile": 0.7})["values"]["potential_value"]
    high = compute_values(*args, SETTINGS | {"wallet_quantile": 0.95})["values"]["potential_value"]
    assert (high > low).all()
    assert model.p_alive(0, 0, 70) == 1.0  # BG/NBD's one-time buyer: the old potential (retention) was 0


# --- fits the data cannot support ----------------------------------------------------------------------------

THREE = Summary.of([1, 3, 0], [4.0, 20.0, 0.0], [30.0, 25.0, 10.0])


@pytest.mark.parametrize("model_cls", [BetaGeo, ModifiedBetaGeo, ParetoNBD])
def test_three_customers_give_a_fit_that_is_not_used(model_cls):
    _, result = model_cls.fit(THREE)
    assert not result.usable
    assert any("too little data: 3 customers" in p for p in result.problems), result.problems


def test_bgnbd_on_three_customers_names_each_reason():
    # The case: a, b ran off towards e^11 with no standard errors, and "converged".
    _, result = BetaGeo.fit(THREE)
    text = " ".join(result.problems)
    assert "too little data" in text and "repeat buyers" in text
    if result.converged:
        runaway = [k for k, v in result.params.items() if abs(np.log(v)) >= 10]
        missing = [k for k, se in result.std_errors.items() if se is None]
        assert (not runaway or "bound" in text) and (not missing or "standard error" in text)


def _result(params, std_errors, converged=True):
    return FitResult(
        model="bgnbd",
        params=params,
        log_likelihood=-10.0,
        customers=1000,
        rows=10,
        converged=converged,
        iterations=5,
        message="ok",
        gradient_norm=0.0,
        std_errors=std_errors,
    )


@pytest.mark.parametrize(
    "params, std_errors, reason",
    [
        ({"r": 0.3, "alpha": 4.0, "a": 60_000.0, "b": 90_000.0}, {"r": 0.1, "alpha": 1.0, "a": 5.0, "b": 5.0}, "bound"),
        ({"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 2.0}, {"r": 0.1, "alpha": 1.0, "a": None, "b": 0.5}, "standard error"),
        ({"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 2.0}, {"r": 0.1, "alpha": float("inf"), "a": 0.2, "b": 0.5}, "standard error"),
    ],
)
def test_assess_rejects_each_unsupported_kind_of_fit(params, std_errors, reason):
    judged = assess(
        _result(params, std_errors),
        customers=1000,
        minimum_customers=30,
        informative=400,
        minimum_informative=10,
        informative_name="repeat buyers",
    )
    assert not judged.usable and reason in " ".join(judged.problems)
    fine = assess(
        _result({"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 2.0}, {"r": 0.1, "alpha": 1.0, "a": 0.2, "b": 0.5}),
        customers=1000,
        minimum_customers=30,
        informative=400,
        minimum_informative=10,
        informative_name="repeat buyers",
    )
    assert fine.usable and fine.problems == ()


def test_cdnow_fits_stay_usable():
    with CDNOW.open() as f:
        rows = list(csv.DictReader(f))
    d = {k: np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T", "zbar")}
    summary = Summary.of(d["x"], d["t_x"], d["T"])
    for cls in (BetaGeo, ModifiedBetaGeo, ParetoNBD):
        assert cls.fit(summary)[1].usable, cls.name
    assert GammaGamma.fit(d["x"], d["zbar"])[1].usable


# --- predictions refuse NaN and negative inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [BetaGeo(0.243, 4.414, 0.793, 2.426), ModifiedBetaGeo(0.52, 6.18, 0.89, 1.61), ParetoNBD(0.553, 10.578, 0.606, 11.669)],
)
@pytest.mark.parametrize(
    "x, t_x, T, t",
    [
        (float("nan"), 1, 5, 10),
        (1, -1, 5, 10),
        (-1, 0, 5, 10),
        (1, 1, float("inf"), 10),
        (1, 6, 5, 10),
        (1, 1, 5, -3),
        (1, 1, 5, float("nan")),
    ],
)
def test_predictions_reject_nan_and_negative_inputs(model, x, t_x, T, t):
    with pytest.raises(InvalidSummary):
        model.expected_purchases(t, [x], [t_x], [T])
    if t == 10:
        with pytest.raises(ValueError):
            model.p_alive([x], [t_x], [T])
        with pytest.raises(ValueError):
            model.discounted_purchases([x], [t_x], [T], period=4.3, periods=12, discount_rate=0.01)


def test_expected_spend_rejects_nan_and_negative_inputs():
    spend = GammaGamma(6.25, 3.74, 15.44)
    for x, zbar in [(float("nan"), 10.0), (-1.0, 10.0), (2.0, -5.0), (2.0, float("nan"))]:
        with pytest.raises(ValueError):
            spend.expected_spend(np.array([x]), np.array([zbar]))


# --- model choice by holdout error -----------------------------------------------------------------------------


def _population(seed: int, n: int = 4000):
    """Pareto/NBD customers observed for T weeks and then a 13-week holdout."""
    rng = np.random.default_rng(seed)
    T = rng.integers(10, 60, n).astype(float)
    x_all, t_all = simulate.pareto_nbd(T + 13, 0.6, 8.0, 0.8, 10.0, rng)
    # Thin the whole-period history into calibration and holdout: purchases after the first are uniform on
    # (0, t_all] given the last one at t_all, so each falls in the holdout with the share of (T, t_all] in it.
    t_first = np.zeros(n)
    extra = np.maximum(x_all - 1, 0)
    late = np.where(t_all > T, (t_all - T) / np.maximum(t_all, 1e-9), 0.0)
    holdout_other = rng.binomial(extra.astype(np.int64), np.clip(late, 0, 1))
    last_in_holdout = (x_all > 0) & (t_all > T)
    holdout = holdout_other + last_in_holdout
    x = x_all - holdout
    t_x = np.where(x > 0, np.minimum(np.where(last_in_holdout, T * rng.uniform(0.5, 1, n), t_all), T), t_first)
    return _stats(x, np.round(t_x * 7) / 7, T, np.where(x > 0, 20.0 + rng.gamma(2.0, 5.0, n), 0.0), holdout)


def test_auto_fits_every_candidate_and_keeps_the_lowest_holdout_error():
    stats = _population(3)
    out = fit_statistics("auto", stats, 13.0, 91, 7.0)
    selection = out["selection"]
    candidates = {c["model"]: c for c in selection["candidates"]}
    assert set(candidates) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    for c in candidates.values():
        assert c["aic"] is not None and c["holdout_mean_absolute_error"] is not None, c
    usable = [c for c in candidates.values() if c["usable"]]
    best = min(usable, key=lambda c: c["holdout_mean_absolute_error"])
    assert selection["chosen"] == best["model"] == out["model"] == out["transactions"]["model"]
    assert out["diagnostics"]["mean_absolute_error"] == best["holdout_mean_absolute_error"]


def test_the_choice_follows_the_holdout_figures_not_the_aic(monkeypatch):
    """Make the model with the best AIC the worst on the holdout: the choice must follow the holdout."""
    import clv.fits.service as service

    stats = _population(4)
    real = service.holdout_diagnostics
    penalty = {"bgnbd": 0.0, "mbgnbd": 0.0, "pareto_nbd": 0.0}
    first = fit_statistics("auto", stats, 13.0, 91, 7.0)["selection"]["candidates"]
    by_aic = min((c for c in first if c["usable"]), key=lambda c: c["aic"])["model"]
    penalty[by_aic] = 10.0

    def skewed(model, *args):
        d = real(model, *args)
        d["mean_absolute_error"] += penalty[model.name]
        return d

    monkeypatch.setattr(service, "holdout_diagnostics", skewed)
    out = fit_statistics("auto", stats, 13.0, 91, 7.0)
    assert out["model"] != by_aic
    assert (
        out["selection"]["chosen"]
        == min((c for c in out["selection"]["candidates"] if c["usable"]), key=lambda c: c["holdout_mean_absolute_error"])[
            "model"
        ]
    )


def test_auto_with_no_usable_candidate_fails_with_every_reason():
    stats = _stats([1, 3, 0], [4.0, 20.0, 0.0], [30.0, 25.0, 10.0], [10.0, 12.0, 0.0], [0, 1, 0])
    with pytest.raises(NoUsableModel) as caught:
        fit_statistics("auto", stats, 13.0, 91, 7.0)
    assert "too little data" in str(caught.value)
    assert {c["model"] for c in caught.value.selection["candidates"]} == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert caught.value.selection["chosen"] is None


def test_spend_without_heterogeneity_falls_back_to_the_population_mean():
    """The demo's case: every purchase's value drawn from one distribution, so customers do not differ in spend;
    Gamma-Gamma's γ ran off to 1.6e5. The fit is not used, the population's mean spend is, and the fit stays
    usable for scoring."""
    from clv.fits.service import problems

    stats = _population(5)
    stats = _stats(stats.x, stats.t_x, stats.T, np.where(stats.x > 0, 20.0, 0.0), stats.holdout_x)
    out = fit_statistics("bgnbd", stats, 13.0, 91, 7.0)
    assert out["spend"]["usable"] is False and out["spend"]["fallback_mean_spend"] == pytest.approx(20.0)

    class Row:
        transactions, spend = out["transactions"], out["spend"]

    assert problems(Row) == []
    values = compute_values("bgnbd", out["transactions"]["params"], out["spend"], stats, SETTINGS)["values"]
    np.testing.assert_allclose(values["expected_spend"], 20.0)
    assert (values["potential_value"][stats.x == 0] > 0).all()
