"""Transaction models: BG/NBD, MBG/NBD and Pareto/NBD — likelihoods, gradients, fits and predictions.

Everything is evaluated in log space (gammaln, log1p, logaddexp), so large frequencies and long histories
neither overflow nor lose the small term of a sum. Predictions use Euler's transformation of the Gauss
hypergeometric function, 2F1(A, B; C; z) = (1 - z)^(C-A-B) 2F1(C-A, C-B; C; z), which moves the customer's
frequency out of the numerator parameters: 2F1 then stays near 1 instead of growing like (1 - z)^-x.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from clv.models.data import Summary
from clv.models.fitting import FitError, FitResult, fit

MIN_CUSTOMERS = 2


def _check_identifiable(data: Summary) -> None:
    if data.customers < MIN_CUSTOMERS:
        raise FitError(f"need at least {MIN_CUSTOMERS} customers to fit a transaction model, got {data.customers:g}")
    if not (data.x > 0).any():
        raise FitError("no customer made a repeat purchase: purchase rate and dropout cannot be told apart")
    if not (data.T > 0).any():
        raise FitError("every customer has age T = 0: there is no observation period to learn from")


def _by_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row index of the first of each distinct key, and each row's position among them (for per-group work)."""
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


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
        result: FitResult = fit(cls.name, cls.param_names, cls.loglik, data, data.customers, len(data.x),
                                starts or cls.default_starts(data))
        return cls.from_params(result.params), result

    @classmethod
    def default_starts(cls, data: Summary) -> list[list[float]]:
        raise NotImplementedError

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        raise NotImplementedError

    def log_likelihood(self, data: Summary) -> float:
        return float(np.dot(data.weights, self.loglik_rows(data.x, data.t_x, data.T)))

    def discounted_purchases(self, x, t_x, T, *, period: float, periods: int, discount_rate: float) -> np.ndarray:
        """Σ_k (E[Y(k·period)] − E[Y((k−1)·period)]) / (1 + d)^k for k = 1…periods, per customer.

        The part of E[Y(t)] that depends on t is a function of (x, T) only (times P(alive), which does not
        depend on t), so it is computed once per distinct (x, T) on a small period axis and gathered back.
        """
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        keys = x * 1e7 + T if len(x) > 64 else None  # T < 1e7 units; pairs collapse losslessly for gathering
        if keys is not None:
            first, inverse = _by_unique(keys)
            ux, uT = x[first], T[first]
        else:
            inverse, ux, uT = None, x, T
        horizon = period * np.arange(0, periods + 1, dtype=np.float64)
        growth = self._growth(ux[:, None], uT[:, None], horizon[None, :])  # (groups, periods + 1)
        per_group = np.diff(growth, axis=1) @ _discount_weights(periods, discount_rate)
        per_customer = per_group if inverse is None else per_group[inverse]
        return per_customer * self.p_alive(x, t_x, T)

    def expected_purchases(self, t, x, t_x, T) -> np.ndarray:
        """Expected purchases in (T, T + t] given the history, per customer."""
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        t = np.asarray(t, dtype=np.float64)
        return self._growth(x, T, t) * self.p_alive(x, t_x, T)


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
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        a3 = -(r + x) * log_at
        # b + x - 1 > 0 whenever x >= 1; the placeholder keeps log() quiet on x = 0 rows, masked out below.
        bx1 = np.where(repeat, b + x - 1, 1.0)
        a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * log_atx, -np.inf)
        tail = np.logaddexp(a3, a4)
        return a1 + a2 + tail, (a3, a4, tail, log_at, log_atx, bx1, repeat)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params
        x, t_x, T, w = data.x, data.t_x, data.T, data.weights
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rows, (a3, a4, tail, log_at, log_atx, bx1, repeat) = BetaGeo._terms(params, x, t_x, T)
            w3, w4 = np.exp(a3 - tail), np.where(repeat, np.exp(a4 - tail), 0.0)
            d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_atx
            d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
            d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
            d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / bx1
        grad = np.array([w @ d_r, w @ d_alpha, w @ d_a, w @ d_b])
        return float(w @ rows), grad

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        with np.errstate(divide="ignore"):
            return self._terms(self.values(), x, t_x, T)[0]

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(still active at T | x, t_x, T); 1 for customers without repeat purchases."""
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        repeat = x > 0
        with np.errstate(divide="ignore"):
            log_odds_dead = np.where(repeat, np.log(self.a) - np.log(np.where(repeat, self.b + x - 1, 1.0))
                                     + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)), -np.inf)
        return expit(-log_odds_dead)

    def _growth(self, x, T, t):
        """E[Y(t) | alive-weighted] / P(alive): (a+b+x−1)/(a−1) · [1 − (1−z)^(a−1) 2F1(a+b−1−r, a−1; a+b+x−1; z)]."""
        r, alpha, a, b = self.r, self.alpha, self._a_off_one(), self.b
        z = t / (alpha + T + t)
        c = a + b + x - 1
        return c / (a - 1) * (1 - np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, c, z))

    def _a_off_one(self) -> float:
        # At a = 1 the closed form is 0/0 (a removable singularity); a hair's shift changes nothing measurable.
        return self.a if abs(self.a - 1) > 1e-7 else 1 + 1e-7


@dataclass(frozen=True)
class ModifiedBetaGeo(BetaGeo):
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): as BG/NBD, but the customer may also drop out right after
    the first purchase, so customers without repeat purchases are not all certainly alive."""

    name: ClassVar[str] = "mbgnbd"

    @staticmethod
    def _terms(params, x, t_x, T):
        r, alpha, a, b = params
        log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
        a3 = -(r + x) * log_at
        a4 = np.log(a) - np.log(b + x) - (r + x) * log_atx
        tail = np.logaddexp(a3, a4)
        return a1 + a2 + tail, (a3, a4, tail, log_at, log_atx)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params
        x, t_x, T, w = data.x, data.t_x, data.T, data.weights
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rows, (a3, a4, tail, log_at, log_atx) = ModifiedBetaGeo._terms(params, x, t_x, T)
            w3, w4 = np.exp(a3 - tail), np.exp(a4 - tail)
            d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_atx
            d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
            d_a = digamma(a + b) - digamma(a + b + x + 1) + w4 / a
            d_b = digamma(a + b) + digamma(b + x + 1) - digamma(b) - digamma(a + b + x + 1) - w4 / (b + x)
        return float(w @ rows), np.array([w @ d_r, w @ d_alpha, w @ d_a, w @ d_b])

    def p_alive(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        log_odds_dead = (np.log(self.a) - np.log(self.b + x)
                         + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        return expit(-log_odds_dead)

    def _growth(self, x, T, t):
        """(a+b+x)/(a−1) · [1 − (1−z)^(a−1) 2F1(a+b−r, a−1; a+b+x; z)]."""
        r, alpha, a, b = self.r, self.alpha, self._a_off_one(), self.b
        z = t / (alpha + T + t)
        c = a + b + x
        return c / (a - 1) * (1 - np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - r, a - 1, c, z))


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
    # Relative step of the central-difference gradient: 2F1's derivatives in its parameters have no closed form.
    GRADIENT_STEP: ClassVar[float] = 1e-6

    @classmethod
    def default_starts(cls, data: Summary) -> list[list[float]]:
        scale = float(np.average(data.T, weights=data.weights)) or 1.0
        return [[0.5, scale / 4, 0.5, scale / 4], [1.0, scale, 1.0, scale], [0.2, scale / 10, 2.0, scale * 2]]

    @staticmethod
    def _rows(params, x, t_x, T) -> np.ndarray:
        r, alpha, s, beta = params
        rho = r + s + x
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        l1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        if alpha >= beta:
            def log_f(t):
                return np.log(hyp2f1(rho, s + 1, rho + 1, (alpha - beta) / (alpha + t))) - rho * np.log(alpha + t)
        else:
            def log_f(t):
                return np.log(hyp2f1(rho, r + x, rho + 1, (beta - alpha) / (beta + t))) - rho * np.log(beta + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            f_tx, f_T = log_f(t_x), log_f(T)
            # A0 = F(t_x) − F(T) > 0, in logs: log F(t_x) + log1p(−F(T)/F(t_x)); −inf when t_x = T.
            log_a0 = f_tx + np.log1p(-np.exp(np.minimum(f_T - f_tx, 0.0)))
            l2 = np.log(s) - np.log(rho) + log_a0
            return head + np.logaddexp(l1, l2)

    @staticmethod
    def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
        w = data.weights

        def total(p):
            return float(w @ ParetoNBD._rows(p, data.x, data.t_x, data.T))

        ll = total(params)
        grad = np.empty(len(params))
        for i in range(len(params)):
            h = ParetoNBD.GRADIENT_STEP * params[i]
            up, down = params.copy(), params.copy()
            up[i] += h
            down[i] -= h
            grad[i] = (total(up) - total(down)) / (2 * h)
        return ll, grad

    def loglik_rows(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        return self._rows(self.values(), x, t_x, T)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A0), in logs."""
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        r, alpha, s, beta = self.values()
        ll = self._rows(self.values(), x, t_x, T)
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        l1 = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        # P(alive) = exp(l1) / (exp(l1) + exp(l2)) = exp(head + l1 − ll).
        return np.minimum(np.exp(head + l1 - ll), 1.0)

    def _growth(self, x, T, t):
        """(r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)]."""
        r, alpha, s, beta = self.values()
        s1 = s if abs(s - 1) > 1e-7 else 1 + 1e-7
        return (r + x) * (beta + T) / ((alpha + T) * (s1 - 1)) * -np.expm1((s1 - 1) * (np.log(beta + T) - np.log(beta + T + t)))
