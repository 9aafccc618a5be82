"""Transaction models: BG/NBD, MBG/NBD and Pareto/NBD — likelihoods, gradients, fits and predictions.

Everything is evaluated in log space (gammaln, log1p, logaddexp), so large frequencies and long histories
neither overflow nor lose the small term of a sum. Predictions use Euler's transformation of the Gauss
hypergeometric function, 2F1(A, B; C; z) = (1 - z)^(C-A-B) 2F1(C-A, C-B; C; z), which moves the customer's
frequency out of the numerator parameters: 2F1 then stays near 1 instead of growing like (1 - z)^-x.
"""

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from clv.probability_models import pareto_series, special
from clv.probability_models.data import InvalidSummary, Summary, dot
from clv.probability_models.fitting import FitError, FitResult, assess, fit, newton, with_numeric_hessian

MIN_CUSTOMERS = 2
# Below these a fit may run, but is not used for predictions (see `fitting.assess`): four parameters from a
# handful of customers fit the noise (three customers gave BG/NBD a, b ≈ e^11 and no standard errors).
MIN_CUSTOMERS_TO_USE = 30
MIN_REPEAT_BUYERS_TO_USE = 10


def predictors(x, t_x, T, t=None):
    """The inputs of a prediction as float arrays, refused (InvalidSummary, a ValueError) when any is NaN,
    infinite or negative, or a last purchase lies after the end of the observation: the formulas would return
    NaN or a confident wrong number instead of an error."""
    arrays = [np.asarray(v, dtype=np.float64) for v in (x, t_x, T)]
    names = ["x", "t_x", "T"]
    if t is not None:
        arrays.append(np.asarray(t, dtype=np.float64))
        names.append("t")
    for name, v in zip(names, arrays, strict=True):
        if not np.isfinite(v).all():
            raise InvalidSummary(f"{name} must be finite (got NaN or infinity)")
        if (v < 0).any():
            raise InvalidSummary(f"{name} must not be negative")
    if (arrays[1] > arrays[2] + 1e-9).any():
        raise InvalidSummary("need t_x <= T (the last purchase cannot be after the end of the observation)")
    return arrays


def _check_identifiable(data: Summary) -> None:
    if data.customers < MIN_CUSTOMERS:
        raise FitError(f"need at least {MIN_CUSTOMERS} customers to fit a transaction model, got {data.customers:g}")
    if not (data.x > 0).any():
        raise FitError("no customer made a repeat purchase: purchase rate and dropout cannot be told apart")
    if not (data.T > 0).any():
        raise FitError("every customer has age T = 0: there is no observation period to learn from")


PILOT_CUSTOMERS = 50_000


def _pilot_sample(data: Summary, seed: int = 20051) -> Summary | None:
    """A customer-level random subsample (binomial thinning of each row's weight), or None if data are small."""
    if data.customers < 4 * PILOT_CUSTOMERS or len(data.x) < 20_000:
        return None
    rng = np.random.default_rng(seed)
    weights = rng.binomial(np.rint(data.weights).astype(np.int64), PILOT_CUSTOMERS / data.customers).astype(np.float64)
    keep = weights > 0
    return Summary(data.x[keep], data.t_x[keep], data.T[keep], weights[keep])


def _codes(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and each entry's position among them; small whole numbers code as themselves (no sort)."""
    if len(v) and v.min() >= 0 and v.max() < 4 * len(v) + 1000:
        as_int = v.astype(np.int64)
        if np.array_equal(as_int, v):
            return np.arange(as_int.max() + 1, dtype=np.float64), as_int
    u, inverse = np.unique(v, return_inverse=True)
    return u, inverse.ravel()


def _discount_weights(periods: int, discount_rate: float) -> np.ndarray:
    return (1.0 + discount_rate) ** -np.arange(1, periods + 1, dtype=np.float64)


@dataclass(frozen=True)
class TransactionModel:
    """Shared behaviour: fit, log-likelihood per row, discounted expected purchases over a month axis."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]

    @classmethod
    def from_params(cls, params: dict[str, float]):
        return cls(**{k: float(params[k]) for k in cls.param_names})

    def values(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in self.param_names])

    @classmethod
    def fit(cls, data: Summary, starts: list[list[float]] | None = None):
        """Maximum likelihood on (possibly collapsed) statistics; returns the model and the fit report."""
        _check_identifiable(data)
        starts = starts or cls.default_starts(data)
        pilot = _pilot_sample(data)
        if pilot is not None:
            # A fit on a random ~5% of the customers lands close to the optimum for a fraction of the cost;
            # the full data then only polishes it (a few iterations instead of dozens).
            try:
                _check_identifiable(pilot)
                rough = fit(cls.name, cls.param_names, cls.loglik, pilot, pilot.customers, len(pilot.x), starts)
            except FitError:
                rough = None
            if rough is not None and rough.converged:
                polished = newton(cls.name, cls.param_names, cls.full, data, data.customers, len(data.x), rough.values())
                if polished is not None and polished.converged:
                    return cls.from_params(polished.params), cls._assess(polished, data)
                starts = [rough.values().tolist(), *starts]
        result: FitResult = fit(cls.name, cls.param_names, cls.loglik, data, data.customers, len(data.x), starts)
        return cls.from_params(result.params), cls._assess(result, data)

    @staticmethod
    def _assess(result: FitResult, data: Summary) -> FitResult:
        return assess(
            result,
            customers=data.customers,
            minimum_customers=MIN_CUSTOMERS_TO_USE,
            informative=float(data.weights[data.x > 0].sum()),
            minimum_informative=MIN_REPEAT_BUYERS_TO_USE,
            informative_name="repeat buyers",
        )

    @classmethod
    def default_starts(cls, data: Summary) -> list[list[float]]:
        raise NotImplementedError

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def full(cls, params: np.ndarray, data: Summary) -> tuple[float, np.ndarray, np.ndarray]:
        """Log-likelihood, gradient and Hessian (numerical unless a model has the analytic one)."""
        return with_numeric_hessian(cls.loglik)(params, data)

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        raise NotImplementedError

    def p_alive(self, x, t_x, T) -> np.ndarray:
        raise NotImplementedError

    def _growth(self, x, T, t) -> np.ndarray:
        """E[Y(t)] / P(alive) per customer: the part of the expected purchases that depends on t."""
        raise NotImplementedError

    def log_likelihood(self, data: Summary) -> float:
        return dot(data.weights, self.loglik_rows(data.x, data.t_x, data.T))

    def discounted_purchases(self, x, t_x, T, *, period: float, periods: int, discount_rate: float) -> np.ndarray:
        """Σ_k (E[Y(k·period)] − E[Y((k−1)·period)]) / (1 + d)^k for k = 1…periods, per customer.

        The part of E[Y(t)] that depends on t is a function of (x, T) only (times P(alive), which does not
        depend on t), so it is computed once per distinct x and T on a small period axis and gathered back.
        """
        x, t_x, T = predictors(x, t_x, T)
        ux, ix = _codes(x)
        uT, iT = _codes(T)
        horizon = period * np.arange(0, periods + 1, dtype=np.float64)
        weights = _discount_weights(periods, discount_rate)
        if len(ux) * len(uT) <= 4 * len(x) + 100_000:
            # Every (x, T) pair of the grid: cheap when either axis is short (days of age × purchase counts).
            gx, gT = np.repeat(ux, len(uT)), np.tile(uT, len(ux))
            growth = self._growth(gx[:, None], gT[:, None], horizon[None, :])
            per_customer = (np.diff(growth, axis=1) * weights).sum(axis=1)[ix * len(uT) + iT]
        else:
            _, first, inverse = np.unique(ix.astype(np.int64) * len(uT) + iT, return_index=True, return_inverse=True)
            growth = self._growth(x[first][:, None], T[first][:, None], horizon[None, :])
            per_customer = (np.diff(growth, axis=1) * weights).sum(axis=1)[inverse.ravel()]
        return per_customer * self.p_alive(x, t_x, T)

    def expected_purchases(self, t, x, t_x, T) -> np.ndarray:
        """Expected purchases in (T, T + t] given the history, per customer."""
        x, t_x, T, t = predictors(x, t_x, T, t)
        return self._growth(x, T, t) * self.p_alive(x, t_x, T)


def _beta_geo_loglik(params: np.ndarray, data: Summary, modified: bool, hessian: bool = False):
    """Total log-likelihood and gradient of BG/NBD (or MBG/NBD), evaluated the cheap way.

    Per customer: LL = A1 + A2 + log(e^A3 + e^A4), with A1, A2 functions of x alone, so their sums are taken
    over distinct x weighted by Σ weights; log(α + T) and log(α + t_x) are computed once per distinct value.
    Only the mixing of A3 and A4 is per row. MBG/NBD shifts b + x by one and lets x = 0 customers drop out.
    """
    r, alpha, a, b = params
    ix, w, x = data.index, data.weights, data.x
    W = w.sum()
    shift = 1.0 if modified else 0.0
    ux, wx = ix.ux, ix.wx
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ll_x = wx @ (special.gammaln(r + ux) + special.gammaln(b + ux + shift) - special.gammaln(a + b + ux + shift)) + W * (
            r * np.log(alpha) - special.gammaln(r) + special.gammaln(a + b) - special.gammaln(b)
        )
        d_r = wx @ special.digamma(r + ux) + W * (np.log(alpha) - special.digamma(r))
        d_alpha = W * r / alpha
        d_a = W * special.digamma(a + b) - wx @ special.digamma(a + b + ux + shift)
        d_b = wx @ (special.digamma(b + ux + shift) - special.digamma(a + b + ux + shift)) + W * (
            special.digamma(a + b) - special.digamma(b)
        )
        # log(a / (b + x − 1)) (BG) or log(a / (b + x)) (MBG), per distinct x; BG's x = 0 never drops out.
        denom_x = b + ux - 1 + shift
        can_drop = (ux > 0) | modified
        safe_denom = np.where(can_drop, denom_x, 1.0)
        log_c = np.where(can_drop, np.log(a) - np.log(safe_denom), -np.inf)[ix.ix]
        inv_denom = np.where(can_drop, 1.0 / safe_denom, 0.0)[ix.ix]
        log_at, log_atx = np.log(alpha + ix.uT)[ix.iT], np.log(alpha + ix.utx)[ix.itx]
        rx = r + x
        a3 = -rx * log_at
        d = log_c - rx * log_atx - a3  # A4 − A3; −inf where the customer cannot have dropped out
        # log(e^A3 + e^A4) = A3 + max(d, 0) + log1p(e^−|d|), and the two mixing weights from the same e^−|d|
        # (np.logaddexp and np.where cost several times more than these few passes over the rows).
        e = np.exp(-np.abs(d))
        big = 1.0 / (1.0 + e)
        small = e * big
        positive = d > 0
        tail = a3 + np.maximum(d, 0.0) + np.log1p(e)
        ww3 = w * (big + positive * (small - big))
        ww4 = w * (small + positive * (big - small))
    ll = ll_x + dot(w, tail)
    inv_at, inv_atx = (1.0 / (alpha + ix.uT))[ix.iT], (1.0 / (alpha + ix.utx))[ix.itx]
    d_r -= dot(ww3, log_at) + dot(ww4, log_atx)
    d_alpha -= dot(ww3 * rx, inv_at) + dot(ww4 * rx, inv_atx)
    sum4 = ww4.sum()
    d_a += sum4 / a
    d_b -= dot(ww4, inv_denom)
    grad = np.array([d_r, d_alpha, d_a, d_b])
    if not hessian:
        return float(ll), grad, None
    # ∂²log(e^A3 + e^A4) = w3 ∂²A3 + w4 ∂²A4 + w3 w4 (∂A3 − ∂A4)(∂A3 − ∂A4)ᵀ, with
    # ∂A3 = (−log(α+T), −(r+x)/(α+T), 0, 0) and ∂A4 = (−log(α+t_x), −(r+x)/(α+t_x), 1/a, −1/(b+x−1)).
    v = ww3 * np.where(ww4 > 0, ww4 / np.where(w > 0, w, 1.0), 0.0)
    dd = [log_atx - log_at, rx * (inv_atx - inv_at), None, inv_denom]
    h = np.zeros((4, 4))
    for i in (0, 1, 3):
        for j in (0, 1, 3):
            if j >= i:
                h[i, j] = dot(v * dd[i], dd[j])
    vs = v.sum()
    h[2, 2] = vs / a**2
    h[0, 2] = -dot(v, dd[0]) / a
    h[1, 2] = -dot(v, dd[1]) / a
    h[2, 3] = -dot(v, dd[3]) / a
    h[0, 1] += -dot(ww3, inv_at) - dot(ww4, inv_atx)
    h[1, 1] += dot(ww3 * rx, inv_at * inv_at) + dot(ww4 * rx, inv_atx * inv_atx)
    h[2, 2] += -sum4 / a**2
    h[3, 3] += dot(ww4, inv_denom * inv_denom)
    # The parts that depend on x alone.
    tri = functools.partial(special.polygamma, 1)  # the trigamma function
    h[0, 0] += wx @ tri(r + ux) - W * tri(r)
    h[0, 1] += W / alpha
    h[1, 1] += -W * r / alpha**2
    ab = W * tri(a + b) - wx @ tri(a + b + ux + shift)
    h[2, 2] += ab
    h[2, 3] += ab
    h[3, 3] += wx @ (tri(b + ux + shift) - tri(a + b + ux + shift)) + W * (tri(a + b) - tri(b))
    h = np.triu(h) + np.triu(h, 1).T
    return float(ll), grad, h


@dataclass(frozen=True)
class BetaGeo(TransactionModel):
    """BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases at rate λ ~ Γ(r, α); after each repeat purchase the
    customer drops out with probability p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    name: ClassVar[str] = "bgnbd"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    @classmethod
    def default_starts(cls, data: Summary) -> list[list[float]]:
        scale = float(np.average(data.T, weights=data.weights)) or 1.0
        return [[0.5, scale / 4, 1.0, 2.0], [1.0, scale, 0.5, 1.0], [0.1, scale / 20, 2.0, 5.0]]

    @staticmethod
    def _terms(params, x, t_x, T):
        r, alpha, a, b = params
        repeat = x > 0
        log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        a3 = -(r + x) * log_at
        # b + x - 1 > 0 whenever x >= 1; the placeholder keeps log() quiet on x = 0 rows, masked out below.
        bx1 = np.where(repeat, b + x - 1, 1.0)
        a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * log_atx, -np.inf)
        tail = np.logaddexp(a3, a4)
        return a1 + a2 + tail, (a3, a4, tail, log_at, log_atx, bx1, repeat)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        return _beta_geo_loglik(params, data, modified=False)[:2]

    @classmethod
    def full(cls, params: np.ndarray, data: Summary) -> tuple[float, np.ndarray, np.ndarray]:
        return _beta_geo_loglik(params, data, modified=False, hessian=True)

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        with np.errstate(divide="ignore"):
            return self._terms(self.values(), x, t_x, T)[0]

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(still active at T | x, t_x, T); 1 for customers without repeat purchases."""
        x, t_x, T = predictors(x, t_x, T)
        repeat = x > 0
        with np.errstate(divide="ignore"):
            log_odds_dead = np.where(
                repeat,
                np.log(self.a)
                - np.log(np.where(repeat, self.b + x - 1, 1.0))
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)),
                -np.inf,
            )
        return special.expit(-log_odds_dead)

    def _growth(self, x, T, t):
        """E[Y(t) | alive-weighted] / P(alive): (a+b+x−1)/(a−1) · [1 − (1−z)^(a−1) 2F1(a+b−1−r, a−1; a+b+x−1; z)]."""
        r, alpha, a, b = self.r, self.alpha, self._a_off_one(), self.b
        z = t / (alpha + T + t)
        c = a + b + x - 1
        return c / (a - 1) * (1 - _damped_hyp2f1(a + b - 1 - r, a - 1, c, z))

    def _a_off_one(self) -> float:
        # At a = 1 the closed form is 0/0 (a removable singularity); a hair's shift changes nothing measurable.
        return self.a if abs(self.a - 1) > 1e-7 else 1 + 1e-7


def _damped_hyp2f1(A, B, C, z):
    """(1−z)^B · 2F1(A, B; C; z), finite wherever the product is.

    Either form of the series can overflow on its own: this one when B = a − 1 is large (a and b both large: the
    data show no heterogeneity in dropout, which fits of small or synthetic data reach), Euler's transform
    (1−z)^(C−A) · 2F1(C−A, C−B; C; z) when C − A = r + x is large (hundreds of purchases). Each customer gets
    the form whose exponent is smaller; both are the same function.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log1mz = np.log1p(-z)
        direct = np.exp(B * log1mz) * special.hyp2f1(A, B, C, z)
        euler = np.exp((C - A) * log1mz) * special.hyp2f1(C - A, C - B, C, z)
    return np.where(B <= C - A, direct, euler)


@dataclass(frozen=True)
class ModifiedBetaGeo(BetaGeo):
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): as BG/NBD, but the customer may also drop out right after
    the first purchase, so customers without repeat purchases are not all certainly alive."""

    name: ClassVar[str] = "mbgnbd"

    @staticmethod
    def _terms(params, x, t_x, T):
        r, alpha, a, b = params
        log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x + 1) - special.gammaln(b) - special.gammaln(a + b + x + 1)
        a3 = -(r + x) * log_at
        a4 = np.log(a) - np.log(b + x) - (r + x) * log_atx
        tail = np.logaddexp(a3, a4)
        return a1 + a2 + tail, (a3, a4, tail, log_at, log_atx)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        return _beta_geo_loglik(params, data, modified=True)[:2]

    @classmethod
    def full(cls, params: np.ndarray, data: Summary) -> tuple[float, np.ndarray, np.ndarray]:
        return _beta_geo_loglik(params, data, modified=True, hessian=True)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = predictors(x, t_x, T)
        log_odds_dead = np.log(self.a) - np.log(self.b + x) + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
        return special.expit(-log_odds_dead)

    def _growth(self, x, T, t):
        """(a+b+x)/(a−1) · [1 − (1−z)^(a−1) 2F1(a+b−r, a−1; a+b+x; z)]."""
        r, alpha, a, b = self.r, self.alpha, self._a_off_one(), self.b
        z = t / (alpha + T + t)
        c = a + b + x
        return c / (a - 1) * (1 - _damped_hyp2f1(a + b - r, a - 1, c, z))


@dataclass(frozen=True)
class ParetoNBD(TransactionModel):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases at rate λ ~ Γ(r, α) while alive;
    exponential lifetime at rate μ ~ Γ(s, β). The likelihood uses the α ≥ β / α < β split of Fader & Hardie's
    implementation note, with every power taken in logs and A0 as a log-difference."""

    r: float
    alpha: float
    s: float
    beta: float
    name: ClassVar[str] = "pareto_nbd"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")

    @classmethod
    def default_starts(cls, data: Summary) -> list[list[float]]:
        scale = float(np.average(data.T, weights=data.weights)) or 1.0
        return [[0.5, scale / 4, 0.5, scale / 4], [1.0, scale, 1.0, scale], [0.2, scale / 10, 2.0, scale * 2]]

    @staticmethod
    def _rows(params, x, t_x, T) -> np.ndarray:
        r, alpha, s, beta = params
        rho = r + s + x
        head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        l1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        if alpha >= beta:

            def log_f(t):
                return np.log(special.hyp2f1(rho, s + 1, rho + 1, (alpha - beta) / (alpha + t))) - rho * np.log(alpha + t)
        else:

            def log_f(t):
                return np.log(special.hyp2f1(rho, r + x, rho + 1, (beta - alpha) / (beta + t))) - rho * np.log(beta + t)

        with np.errstate(divide="ignore", invalid="ignore"):
            f_tx, f_T = log_f(t_x), log_f(T)
            # A0 = F(t_x) − F(T) > 0, in logs: log F(t_x) + log1p(−F(T)/F(t_x)); −inf when t_x = T.
            log_a0 = f_tx + np.log1p(-np.exp(np.minimum(f_T - f_tx, 0.0)))
            l2 = np.log(s) - np.log(rho) + log_a0
            return head + np.logaddexp(l1, l2)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        """Total log-likelihood and its analytic gradient (`pareto_series`: equal to `_rows` to ~1e-12)."""
        return pareto_series.loglik(params, data)

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return self._rows(self.values(), x, t_x, T)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A0), in logs."""
        x, t_x, T = predictors(x, t_x, T)
        r, alpha, s, beta = self.values()
        ll = self._rows(self.values(), x, t_x, T)
        head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        l1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        # P(alive) = exp(l1) / (exp(l1) + exp(l2)) = exp(head + l1 − ll).
        return np.minimum(np.exp(head + l1 - ll), 1.0)

    def _growth(self, x, T, t):
        """(r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)]."""
        r, alpha, s, beta = self.values()
        s1 = s if abs(s - 1) > 1e-7 else 1 + 1e-7
        return (r + x) * (beta + T) / ((alpha + T) * (s1 - 1)) * -np.expm1((s1 - 1) * (np.log(beta + T) - np.log(beta + T + t)))
