"""The value models against the literature, finite differences, simulated truths and extreme inputs."""

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import gammaln, hyp2f1

from clv.probability_models import (
    BetaGeo,
    FitError,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    Summary,
    collapse,
    discounted_clv,
    pareto_series,
    simulate,
)
from clv.probability_models.data import InvalidSummary

CDNOW = Path(__file__).parent / "data" / "cdnow_customers_summary_with_transactions.csv"


@pytest.fixture(scope="module")
def cdnow():
    with CDNOW.open() as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T", "zbar")}


@pytest.fixture(scope="module")
def cdnow_summary(cdnow):
    return Summary.of(cdnow["x"], cdnow["t_x"], cdnow["T"])


# --- published numeric checks -------------------------------------------------------------------------------


def test_bgnbd_log_likelihood_matches_the_published_checks():
    model = BetaGeo(r=0.25, alpha=4.0, a=0.8, b=2.5)
    ll = model.loglik_rows([0, 200], [0, 38], [40, 40])
    assert ll[0] == pytest.approx(-0.59947382, abs=1e-8)
    assert ll[1] == pytest.approx(100.7957, abs=1e-4)


def test_bgnbd_reproduces_fader_hardie_lee_on_cdnow(cdnow_summary):
    model, result = BetaGeo.fit(cdnow_summary)
    assert result.converged, result.message
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert result.params[name] == pytest.approx(published, abs=6e-4), name
    assert result.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert all(se is not None and se > 0 for se in result.std_errors.values())
    assert result.aic == pytest.approx(2 * 4 + 2 * 9582.4, abs=0.2)


def test_bgnbd_published_per_customer_prediction():
    model = BetaGeo(r=0.243, alpha=4.414, a=0.793, b=2.426)
    assert float(model.expected_purchases(39, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=5e-4)


def test_pareto_nbd_reproduces_the_published_estimates(cdnow_summary):
    model, result = ParetoNBD.fit(cdnow_summary)
    assert result.converged, result.message
    for name, published in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert result.params[name] == pytest.approx(published, rel=2e-3), name
    assert result.log_likelihood == pytest.approx(-9595.0, abs=0.05)


def test_gamma_gamma_reproduces_fader_hardie_2013(cdnow):
    model, result = GammaGamma.fit(cdnow["x"], cdnow["zbar"])
    assert result.converged and result.customers == 946
    assert result.params["p"] == pytest.approx(6.25, abs=5e-3)
    assert result.params["q"] == pytest.approx(3.74, abs=5e-3)
    assert result.params["gamma"] == pytest.approx(15.44, abs=1e-2)


def test_mbgnbd_fits_cdnow_at_least_as_well_as_bgnbd(cdnow_summary):
    _, bg = BetaGeo.fit(cdnow_summary)
    _, mbg = ModifiedBetaGeo.fit(cdnow_summary)
    assert mbg.converged
    assert -9590 < mbg.log_likelihood < -9575


# --- the likelihoods themselves ------------------------------------------------------------------------------


def _bgnbd_direct(r, alpha, a, b, x, t_x, T):
    """The textbook formula, unguarded: fine for moderate inputs."""
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    tail = (alpha + T) ** -(r + x) + (x > 0) * a / max(b + x - 1, 1e-300) * (alpha + t_x) ** -(r + x)
    return a1 + a2 + np.log(tail)


def test_bgnbd_log_space_agrees_with_the_textbook_formula():
    model = BetaGeo(r=0.4, alpha=3.0, a=1.2, b=2.0)
    for x, t_x, T in [(0, 0, 10), (1, 3, 10), (5, 9.5, 10), (12, 20, 52)]:
        assert model.loglik_rows([x], [t_x], [T])[0] == pytest.approx(_bgnbd_direct(0.4, 3.0, 1.2, 2.0, x, t_x, T), rel=1e-12)


@pytest.mark.parametrize("params", [(0.55, 10.6, 0.61, 11.7), (0.55, 20.0, 0.61, 5.0), (1.3, 2.0, 0.4, 30.0)])
@pytest.mark.parametrize("row", [(0, 0, 38), (2, 30.4, 38.9), (150, 37.0, 39.0), (7, 1.0, 400.0)])
def test_pareto_nbd_likelihood_matches_numerical_integration(params, row):
    """L = Γ(r+x)α^r/Γ(r) [(α+T)^-(r+x) (β/(β+T))^s + ∫_{t_x}^T (α+τ)^-(r+x) s β^s (β+τ)^-(s+1) dτ]."""
    r, alpha, s, beta = params
    x, t_x, T = row
    log_head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    # Scale the integrand by its value at t_x so quad sees numbers near 1.
    log_scale = -(r + x) * np.log(alpha + t_x) + s * np.log(beta) - (s + 1) * np.log(beta + t_x)

    def integrand(tau):
        return s * np.exp(-(r + x) * np.log(alpha + tau) + s * np.log(beta) - (s + 1) * np.log(beta + tau) - log_scale)

    integral, _ = quad(integrand, t_x, T, epsabs=0, epsrel=1e-12, limit=200)
    survive = -(r + x) * np.log(alpha + T) + s * (np.log(beta) - np.log(beta + T))
    expected = log_head + np.logaddexp(survive, log_scale + np.log(integral) if integral > 0 else -np.inf)
    assert ParetoNBD(*params).loglik_rows([x], [t_x], [T])[0] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def _random_summary(seed=3, n=300):
    rng = np.random.default_rng(seed)
    T = rng.uniform(5, 60, n)
    x, t_x = simulate.bgnbd(T, 0.5, 5.0, 0.8, 2.5, rng)
    return Summary.of(x, t_x, T, rng.integers(1, 4, n))


@pytest.mark.parametrize(
    "model_cls, params",
    [
        (BetaGeo, [0.4, 6.0, 0.9, 2.2]),
        (ModifiedBetaGeo, [0.4, 6.0, 0.9, 2.2]),
        (ParetoNBD, [0.5, 8.0, 0.7, 9.0]),
    ],
)
def test_transaction_gradients_match_finite_differences(model_cls, params):
    data = _random_summary()
    params = np.array(params)
    _, grad = model_cls.loglik(params, data)
    for i in range(len(params)):
        h = 1e-5 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric = (model_cls.loglik(up, data)[0] - model_cls.loglik(down, data)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-5)


def test_gamma_gamma_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    x = rng.integers(1, 20, 400).astype(float)
    zbar = simulate.gamma_gamma(x, 6.0, 4.0, 15.0, rng)
    from clv.probability_models.gamma_gamma import SpendData

    data, params = SpendData.of(x, zbar), np.array([5.0, 3.5, 12.0])
    _, grad = GammaGamma.loglik(params, data)
    for i in range(3):
        h = 1e-5 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric = (GammaGamma.loglik(up, data)[0] - GammaGamma.loglik(down, data)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-6)


def test_collapsed_rows_give_the_same_fit_as_one_row_per_customer():
    rng = np.random.default_rng(11)
    T = rng.integers(1, 53, 5000).astype(float)
    x, t_x = simulate.bgnbd(T, 0.3, 4.0, 0.8, 2.5, rng)
    t_x = np.floor(t_x * 7) / 7  # day resolution, like the service's summaries
    raw = Summary.of(x, t_x, T)
    collapsed, inverse = collapse(x, t_x, T)
    assert len(collapsed.x) < len(x) and collapsed.customers == len(x)
    assert np.array_equal(collapsed.x[inverse], x)
    _, full = BetaGeo.fit(raw)
    _, short = BetaGeo.fit(collapsed)
    assert short.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-9)
    for k in full.params:
        assert short.params[k] == pytest.approx(full.params[k], rel=1e-4)


# --- recovery of known parameters ----------------------------------------------------------------------------


def test_bgnbd_recovers_simulated_parameters():
    rng = np.random.default_rng(2024)
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.0}
    T = rng.uniform(20, 80, 40_000)
    x, t_x = simulate.bgnbd(T, *truth.values(), rng)
    _, result = BetaGeo.fit(collapse(x, np.round(t_x, 2), T.round(2))[0])
    assert result.converged
    for k, v in truth.items():
        assert abs(result.params[k] - v) < 4 * result.std_errors[k], (k, result.params[k], result.std_errors[k])


def test_pareto_nbd_recovers_simulated_parameters():
    rng = np.random.default_rng(7)
    truth = {"r": 0.6, "alpha": 8.0, "s": 0.8, "beta": 10.0}
    T = np.repeat(np.arange(20.0, 80.0, 2.0), 500)
    x, t_x = simulate.pareto_nbd(T, *truth.values(), rng)
    _, result = ParetoNBD.fit(collapse(x, np.round(t_x), T)[0])
    assert result.converged
    for k, v in truth.items():
        assert abs(result.params[k] - v) < 4 * result.std_errors[k] + 0.02 * v, (k, result.params[k])


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(9)
    x = rng.integers(1, 15, 30_000).astype(float)
    zbar = simulate.gamma_gamma(x, 6.0, 4.0, 15.0, rng)
    _, result = GammaGamma.fit(x, zbar)
    assert result.converged
    for k, v in {"p": 6.0, "q": 4.0, "gamma": 15.0}.items():
        assert abs(result.params[k] - v) < 4 * result.std_errors[k], (k, result.params[k])


# --- predictions and CLV -------------------------------------------------------------------------------------


def test_euler_transformed_prediction_equals_the_textbook_one():
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    model = BetaGeo(r, alpha, a, b)
    for x, t_x, T, t in [(0, 0, 38.9, 39), (2, 30.43, 38.86, 39), (8, 35, 40, 10), (1, 1, 5, 100)]:
        z = t / (alpha + T + t)
        textbook = (
            (a + b + x - 1)
            / (a - 1)
            * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
            / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
        )
        assert float(model.expected_purchases(t, x, t_x, T)) == pytest.approx(textbook, rel=1e-9)


@pytest.mark.parametrize(
    "model",
    [BetaGeo(0.243, 4.414, 0.793, 2.426), ModifiedBetaGeo(0.52, 6.18, 0.89, 1.61), ParetoNBD(0.553, 10.578, 0.606, 11.669)],
)
def test_vectorised_clv_equals_the_month_by_month_definition(model, cdnow):
    spend = GammaGamma(6.25, 3.74, 15.44)
    x, t_x, T, zbar = cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["zbar"]
    clv = discounted_clv(model, spend, x, t_x, T, zbar, months=12, units_per_month=4.345, monthly_discount_rate=0.01)
    # lifetimes.utils._customer_lifetime_value, literally (one population prediction per month).
    expected = np.zeros_like(x)
    m = spend.expected_spend(x, zbar)
    for i in np.arange(1, 13) * 4.345:
        delta = model.expected_purchases(i, x, t_x, T) - model.expected_purchases(i - 4.345, x, t_x, T)
        expected += m * delta / 1.01 ** (i / 4.345)
    np.testing.assert_allclose(clv, expected, rtol=1e-10, atol=1e-10)
    assert (clv >= 0).all()


# --- extreme inputs: a clear error or a stable answer, never NaN ---------------------------------------------


def test_a_single_customer_is_a_clear_error():
    with pytest.raises(FitError, match="at least"):
        BetaGeo.fit(Summary.of([3], [10], [20]))


def test_no_repeat_buyers_is_a_clear_error():
    with pytest.raises(FitError, match="no customer made a repeat purchase"):
        BetaGeo.fit(Summary.of(np.zeros(100), np.zeros(100), np.full(100, 30.0)))
    with pytest.raises(FitError, match="no customer made a repeat purchase"):
        ParetoNBD.fit(Summary.of(np.zeros(100), np.zeros(100), np.full(100, 30.0)))
    with pytest.raises(FitError, match="repeat buyers"):
        GammaGamma.fit(np.zeros(10), np.zeros(10))


def test_inconsistent_statistics_are_rejected():
    with pytest.raises(InvalidSummary):
        Summary.of([1], [30], [20])
    with pytest.raises(InvalidSummary):
        Summary.of([-1], [0], [20])
    with pytest.raises(InvalidSummary):
        Summary.of([1], [float("nan")], [20])


@pytest.mark.parametrize(
    "model",
    [
        BetaGeo(0.243, 4.414, 0.793, 2.426),
        ModifiedBetaGeo(0.52, 6.18, 0.89, 1.61),
        ParetoNBD(0.553, 10.578, 0.606, 11.669),
        ParetoNBD(0.553, 30.0, 0.606, 2.0),
    ],
)
def test_extreme_histories_give_finite_answers(model):
    # x in the hundreds and thousands, T of decades (in weeks), purchases at the very start or end.
    x = np.array([0, 300, 900, 5000, 250, 1, 400])
    t_x = np.array([0, 38.0, 2000.0, 5199.0, 1.0, 5200.0, 39.0])
    T = np.array([5200.0, 39.0, 5200.0, 5200.0, 5200.0, 5200.0, 39.0])
    ll = model.loglik_rows(x, t_x, T)
    alive = model.p_alive(x, t_x, T)
    expected = model.expected_purchases(52, x, t_x, T)
    discounted = model.discounted_purchases(x, t_x, T, period=4.345, periods=120, discount_rate=0.01)
    for v in (ll, alive, expected, discounted):
        assert np.isfinite(v).all(), v
    assert ((alive >= 0) & (alive <= 1)).all()
    assert (expected >= 0).all() and (discounted >= 0).all()
    assert alive[4] < 1e-6, "hundreds of purchases, then silence for a century: dead"
    assert expected[6] > 200, "400 purchases in 39 weeks, the last one today: keeps buying"
    _, grad = type(model).loglik(model.values(), Summary.of(x, t_x, T))
    assert np.isfinite(grad).all()


def test_zero_spend_customers_are_left_out_of_the_spend_fit_but_still_valued():
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, 2000).astype(float)
    zbar = simulate.gamma_gamma(x, 6.0, 4.0, 15.0, rng)
    zbar[:50] = 0.0
    model, result = GammaGamma.fit(x, zbar)
    assert result.customers == 1950 and result.converged
    spend = model.expected_spend(x[:50], zbar[:50])
    assert np.isfinite(spend).all() and (spend > 0).all()
    assert (spend < model.expected_spend(np.zeros(1), np.zeros(1))).all(), "shrunk from the population mean towards 0"


def test_fit_on_degenerate_data_reports_non_convergence_instead_of_nan():
    # Every repeat buyer spends exactly the same: p runs away; the fit must say so.
    model, result = GammaGamma.fit(np.full(50, 3.0), np.full(50, 20.0))
    assert not result.converged and result.message
    assert all(np.isfinite(v) for v in result.params.values())


@pytest.mark.parametrize("model_cls", [BetaGeo, ModifiedBetaGeo])
def test_analytic_hessians_match_differences_of_the_gradient(model_cls):
    from clv.probability_models.fitting import hessian

    data, params = _random_summary(), np.array([0.4, 6.0, 0.9, 2.2])
    _, _, analytic = model_cls.full(params, data)
    np.testing.assert_allclose(analytic, hessian(model_cls.loglik, params, data), rtol=1e-4, atol=1e-3)


def test_gamma_gamma_hessian_matches_differences_of_the_gradient():
    from clv.probability_models.fitting import hessian
    from clv.probability_models.gamma_gamma import SpendData

    rng = np.random.default_rng(5)
    x = rng.integers(1, 20, 400).astype(float)
    data = SpendData.of(x, simulate.gamma_gamma(x, 6.0, 4.0, 15.0, rng))
    params = np.array([5.0, 3.5, 12.0])
    np.testing.assert_allclose(GammaGamma.hessian(params, data), hessian(GammaGamma.loglik, params, data), rtol=1e-4, atol=1e-3)


def test_newton_polish_on_a_large_population_agrees_with_lbfgs():
    rng = np.random.default_rng(77)
    T = rng.integers(1, 366, 300_000).astype(float)
    x, t = simulate.bgnbd(T, 0.25, 30.0, 0.8, 2.5, rng)
    t_x = np.where(x > 0, np.minimum(np.ceil(t), T), 0.0)
    data, _ = collapse(x, t_x, T, with_inverse=False)
    _, newton_fit = BetaGeo.fit(data)  # pilot + Newton
    from clv.probability_models.fitting import fit

    lbfgs = fit("bgnbd", BetaGeo.param_names, BetaGeo.loglik, data, data.customers, len(data.x), BetaGeo.default_starts(data))
    assert newton_fit.converged and newton_fit.message == "converged (Newton)"
    for k in lbfgs.params:
        assert newton_fit.params[k] == pytest.approx(lbfgs.params[k], rel=1e-5)
        assert newton_fit.std_errors[k] == pytest.approx(lbfgs.std_errors[k], rel=1e-3)


@pytest.mark.parametrize("model_cls", [BetaGeo, ModifiedBetaGeo])
def test_no_dropout_heterogeneity_gives_finite_continuous_predictions(model_cls):
    # Small or synthetic data can fit a, b in the hundred thousands (dropout probability the same for everyone);
    # the textbook series overflows there. Predictions stay finite and converge as a, b grow at a fixed ratio.
    x = np.array([0, 1, 2, 5, 20, 300, 5000])
    t_x = np.array([0, 10, 20, 30, 38, 38, 5199.0])
    T = np.array([40, 40, 40, 40, 40, 40, 5200.0])
    by_scale = [model_cls(0.415, 5.24, 0.435 * k, 0.565 * k).expected_purchases(52, x, t_x, T) for k in (1e4, 1e5, 1e6)]
    for expected in by_scale:
        assert np.isfinite(expected).all() and (expected >= 0).all(), expected
    # Where x is small against b the model's limit is reached; with x in the hundreds it legitimately still moves.
    np.testing.assert_allclose(by_scale[1][:5], by_scale[2][:5], rtol=2e-3)


# --- Pareto/NBD's analytic gradient (the series per distinct (x, t)) ------------------------------------------

PARETO_REGIMES = [
    (0.553, 10.578, 0.606, 11.669),  # CDNOW: α < β, z small
    (0.55, 20.0, 0.61, 5.0),  # α > β
    (0.5, 8.0, 0.7, 8.0),  # α = β: the series is 1
    (0.5, 10.0, 0.7, 4000.0),  # β thousands of times α: z near 1, hyp2f1 fallback
    (0.5, 4000.0, 0.7, 3.0),  # the mirror image
    (3.0, 2.0, 5.0, 30.0),
]  # large shapes


def _extreme_summary():
    data = _random_summary()
    x = np.concatenate([data.x, [0, 150, 900, 5000, 1]])
    t_x = np.concatenate([data.t_x, [0, 37.0, 2000.0, 5199.0, 5200.0]])
    T = np.concatenate([data.T, [38.0, 39.0, 5200.0, 5200.0, 5200.0]])
    return Summary.of(x, t_x, T, np.concatenate([data.weights, np.ones(5)]))


@pytest.mark.parametrize("params", PARETO_REGIMES)
def test_pareto_nbd_series_likelihood_equals_the_hypergeometric_one(params):
    data, params = _extreme_summary(), np.array(params)
    rows = ParetoNBD(*params).loglik_rows(data.x, data.t_x, data.T)
    ll, grad = ParetoNBD.loglik(params, data)
    assert np.isfinite(ll) and np.isfinite(grad).all()
    # scipy's hyp2f1 overflows on some extreme rows (x = 900 over a century when β ≫ α); the series does not.
    finite = np.isfinite(rows)
    assert finite[:-5].all()
    kept = Summary.of(data.x[finite], data.t_x[finite], data.T[finite], data.weights[finite])
    assert ParetoNBD.loglik(params, kept)[0] == pytest.approx(float(np.dot(kept.weights, rows[finite])), rel=1e-11)


@pytest.mark.parametrize("params", PARETO_REGIMES)
def test_pareto_nbd_analytic_gradient_matches_finite_differences(params):
    data, params = _random_summary(), np.array(params)
    data = Summary.of(np.append(data.x, 150), np.append(data.t_x, 37.0), np.append(data.T, 39.0), np.append(data.weights, 1))
    _, grad = ParetoNBD.loglik(params, data)
    for i in range(4):
        h = 1e-6 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h

        # Finite differences of the independent hypergeometric form (scipy's hyp2f1), not of the series itself.
        def total(p):
            return float(np.dot(data.weights, ParetoNBD._rows(p, data.x, data.t_x, data.T)))

        numeric = (total(up) - total(down)) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6), (i, grad[i], numeric)


@pytest.mark.parametrize("params", [PARETO_REGIMES[3], PARETO_REGIMES[4]])
def test_pareto_nbd_pairs_past_the_term_cap_fall_back_to_the_same_values(params, monkeypatch):
    # Near z = 1 the series is cut after MAX_TERMS (it needed up to 200,000 terms per evaluation: 3 customers took
    # 2.7 s to fit); the pairs it did not sum take hyp2f1 and central differences. Both agree with the full series.
    data, params = _extreme_summary(), np.array(params)
    px, pt, _, _ = pareto_series._pairs(data)
    calls, fallback = [], pareto_series._fallback
    monkeypatch.setattr(pareto_series, "_fallback", lambda *a: calls.append(len(a[1])) or fallback(*a))
    capped, capped_grad = pareto_series.log_g(params, px, pt)
    assert calls and calls[0] > 0
    monkeypatch.setattr(pareto_series, "MAX_TERMS", 400_000)
    full, full_grad = pareto_series.log_g(params, px, pt)
    np.testing.assert_allclose(capped, full, rtol=1e-12)
    np.testing.assert_allclose(capped_grad, full_grad, rtol=1e-6, atol=1e-9)


def test_pareto_nbd_on_cdnow_has_standard_errors():
    # They were all None: a forward difference of a numerical gradient made the Hessian indefinite.
    with CDNOW.open() as f:
        rows = list(csv.DictReader(f))
    d = {k: np.array([float(r[k]) for r in rows]) for k in ("x", "t_x", "T")}
    _, result = ParetoNBD.fit(Summary.of(d["x"], d["t_x"], d["T"]))
    for name, (low, high) in {"r": (0.02, 0.1), "alpha": (0.4, 2.0), "s": (0.1, 0.4), "beta": (3.0, 12.0)}.items():
        assert result.std_errors[name] is not None and low < result.std_errors[name] < high, result.std_errors
