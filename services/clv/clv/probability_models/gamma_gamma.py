"""Gamma-Gamma spend model (Fader & Hardie 2013): transaction values z ~ Γ(p, ν), ν ~ Γ(q, γ) per customer.

The likelihood of a customer's mean spend z̄ over x repeat purchases is
Γ(px+q)/(Γ(px)Γ(q)) · γ^q z̄^(px−1) x^(px) / (γ + x z̄)^(px+q). Terms that depend on x alone are summed once
per distinct x; the only per-customer work per evaluation is log(γ + x z̄) and its reciprocal.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from clv.probability_models import special
from clv.probability_models.data import InvalidSummary, dot
from clv.probability_models.fitting import FitError, FitResult, assess, fit, newton

MIN_REPEAT_BUYERS = 2
# Fewer repeat buyers with a positive spend than this: the fit runs but is not used (see `fitting.assess`).
MIN_REPEAT_BUYERS_TO_USE = 10


@dataclass(frozen=True)
class SpendData:
    """Repeat buyers with positive mean spend, in the shape the likelihood needs."""

    x: np.ndarray  # per customer
    spend_total: np.ndarray  # x · z̄ per customer
    unique_x: np.ndarray
    count_x: np.ndarray
    sum_x_log_zbar: float
    sum_log_zbar: float
    sum_x_log_x: float

    @property
    def customers(self) -> int:
        return len(self.x)

    @classmethod
    def of(cls, x, zbar) -> "SpendData":
        x, zbar = np.asarray(x, dtype=np.float64), np.asarray(zbar, dtype=np.float64)
        if x.shape != zbar.shape:
            raise FitError("x and mean spend must have the same length")
        if not (np.isfinite(x).all() and np.isfinite(zbar).all()) or (zbar < 0).any():
            raise FitError("mean spend must be finite and non-negative")
        # The model's spend is strictly positive: customers without repeat purchases or with zero mean spend
        # say nothing about it and are left out of the fit (their expected spend is still predicted).
        keep = (x > 0) & (zbar > 0)
        x, zbar = x[keep], zbar[keep]
        unique_x, count_x = np.unique(x, return_counts=True)
        log_zbar = np.log(zbar)
        return cls(
            x=x,
            spend_total=x * zbar,
            unique_x=unique_x,
            count_x=count_x.astype(np.float64),
            sum_x_log_zbar=dot(x, log_zbar),
            sum_log_zbar=float(log_zbar.sum()),
            sum_x_log_x=dot(x, np.log(x)) if len(x) else 0.0,
        )


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    name: ClassVar[str] = "gamma_gamma"
    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")

    @classmethod
    def from_params(cls, params: dict[str, float]) -> "GammaGamma":
        return cls(**{k: float(params[k]) for k in cls.param_names})

    def values(self) -> np.ndarray:
        return np.array([self.p, self.q, self.gamma])

    @staticmethod
    def loglik(params: np.ndarray, d: SpendData) -> tuple[float, np.ndarray]:
        p, q, g = params
        n = float(d.customers)
        px = p * d.unique_x
        log_g_s = np.log(g + d.spend_total)
        weight = p * d.x + q
        ll = (
            d.count_x @ (special.gammaln(px + q) - special.gammaln(px))
            - n * special.gammaln(q)
            + n * q * np.log(g)
            + p * d.sum_x_log_zbar
            - d.sum_log_zbar
            + p * d.sum_x_log_x
            - dot(weight, log_g_s)
        )
        d_p = (
            d.count_x @ (d.unique_x * (special.digamma(px + q) - special.digamma(px)))
            + d.sum_x_log_zbar
            + d.sum_x_log_x
            - dot(d.x, log_g_s)
        )
        d_q = d.count_x @ special.digamma(px + q) - n * special.digamma(q) + n * np.log(g) - log_g_s.sum()
        d_g = n * q / g - dot(weight, 1.0 / (g + d.spend_total))
        return float(ll), np.array([d_p, d_q, d_g])

    @staticmethod
    def hessian(params: np.ndarray, d: SpendData) -> np.ndarray:
        """Analytic second derivatives: one pass over the customers."""
        p, q, g = params
        n = float(d.customers)
        px = p * d.unique_x
        tri_pq, tri_p = special.polygamma(1, px + q), special.polygamma(1, px)
        inv = 1.0 / (g + d.spend_total)
        weight = p * d.x + q
        h_pp = d.count_x @ (d.unique_x**2 * (tri_pq - tri_p))
        h_pq = d.count_x @ (d.unique_x * tri_pq)
        h_pg = -dot(d.x, inv)
        h_qq = d.count_x @ tri_pq - n * special.polygamma(1, q)
        h_qg = n / g - inv.sum()
        h_gg = -n * q / g**2 + dot(weight, inv * inv)
        return np.array([[h_pp, h_pq, h_pg], [h_pq, h_qq, h_qg], [h_pg, h_qg, h_gg]])

    @classmethod
    def fit(cls, x, zbar, starts: list[list[float]] | None = None) -> tuple["GammaGamma", FitResult]:
        data = SpendData.of(x, zbar)
        if data.customers < MIN_REPEAT_BUYERS:
            raise FitError(f"need at least {MIN_REPEAT_BUYERS} repeat buyers with positive spend, got {data.customers}")
        mean = float(data.spend_total.sum() / data.x.sum())
        if starts is None and data.customers >= 1000:
            # Newton from moment-style estimates converges in a handful of passes at any size.
            result = newton(
                cls.name,
                cls.param_names,
                lambda p, d: (*cls.loglik(p, d), cls.hessian(p, d)),
                data,
                data.customers,
                data.customers,
                _moment_start(data),
            )
            if result is not None and result.converged:
                return cls.from_params(result.params), cls._assess(result, data)
        starts = starts or [[2.0, 3.0, mean], [5.0, 5.0, 2 * mean], [1.0, 2.0, mean / 2]]
        result = fit(cls.name, cls.param_names, cls.loglik, data, data.customers, data.customers, starts)
        return cls.from_params(result.params), cls._assess(result, data)

    @staticmethod
    def _assess(result: FitResult, data: SpendData) -> FitResult:
        return assess(
            result,
            customers=data.customers,
            minimum_customers=0,
            informative=data.customers,
            minimum_informative=MIN_REPEAT_BUYERS_TO_USE,
            informative_name="repeat buyers with a positive spend",
        )

    def log_likelihood(self, x, zbar) -> float:
        return self.loglik(self.values(), SpendData.of(x, zbar))[0]

    def expected_spend(self, x, zbar) -> np.ndarray:
        """E[mean transaction value | x, z̄] = p(γ + x z̄)/(px + q − 1); the population mean pγ/(q − 1) at x = 0."""
        if self.q <= 1:
            raise FitError(f"q = {self.q:.3g} <= 1: the population's mean spend is infinite under this fit")
        x, zbar = np.asarray(x, dtype=np.float64), np.asarray(zbar, dtype=np.float64)
        for name, v in (("x", x), ("mean spend", zbar)):
            if not np.isfinite(v).all() or (v < 0).any():
                raise InvalidSummary(f"{name} must be finite and not negative")
        return self.p * (self.gamma + x * zbar) / (self.p * x + self.q - 1)


def _moment_start(d: SpendData) -> list[float]:
    """Rough (p, q, γ): per-customer means z̄ have E = pγ/(q−1); their spread across customers sets q."""
    zbar = d.spend_total / d.x
    mean, var = float(zbar.mean()), float(zbar.var())
    # Between-customer variance of the mean rate ν^-1 ~ inverse gamma: CV² = 1/(q − 2) (ignoring within noise).
    q = min(max(2.0 + mean * mean / max(var, 1e-12), 2.5), 50.0)
    p = 5.0
    return [p, q, mean * (q - 1) / p]


@dataclass(frozen=True)
class PopulationMeanSpend:
    """Every customer's expected spend per purchase is the population's mean: the Gamma-Gamma model's limit when
    customers do not differ in spend (p, q, γ run off together: the data identify no heterogeneity), and what
    scoring uses when the Gamma-Gamma fit is not usable. Its wallet has no spend headroom (`wallet_ratio`)."""

    mean_spend: float
    name: ClassVar[str] = "population_mean"

    @classmethod
    def of(cls, x, zbar) -> "PopulationMeanSpend":
        """The mean value of all repeat purchases (Σ x z̄ / Σ x over repeat buyers with a positive spend)."""
        data = SpendData.of(x, zbar)
        if data.customers == 0:
            raise FitError("no repeat buyer with a positive spend: no mean spend to fall back on")
        return cls(float(data.spend_total.sum() / data.x.sum()))

    def expected_spend(self, x, zbar) -> np.ndarray:
        x, zbar = np.asarray(x, dtype=np.float64), np.asarray(zbar, dtype=np.float64)
        for name, v in (("x", x), ("mean spend", zbar)):
            if not np.isfinite(v).all() or (v < 0).any():
                raise InvalidSummary(f"{name} must be finite and not negative")
        return np.full(np.broadcast(x, zbar).shape, self.mean_spend)
