"""One maximum-likelihood driver for every model: L-BFGS-B on log-parameters, convergence checked, Hessian SEs.

A model supplies `loglik(params, data) -> (total log-likelihood, gradient w.r.t. the natural parameters)`.
The optimiser works on θ = log(params) so every parameter stays positive without bounds fighting it, and on
the mean log-likelihood per customer so the tolerances mean the same at 2,000 and at 2,000,000 customers.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

# scipy.optimize is imported by `fit`, not here: loaded at import it held ~25 MB more in every clv process,
# which scores events all day and fits only when a fit is asked for (P7: ≤ 150 MB per process).

# The data a model's likelihood reads (Summary, SpendData): fit passes it through untouched.
D = TypeVar("D")
LogLik = Callable[[np.ndarray, D], tuple[float, np.ndarray]]

# Log-parameters live in [e^-12, e^12]: wide enough for any real data set, narrow enough that no term overflows.
LOG_BOUND = 12.0
# Converged means: the optimiser says so and the gradient of the mean log-likelihood (per log-parameter) is flat.
GRADIENT_TOLERANCE = 1e-4
# A parameter beyond e^±10 (a Beta's a, b in the tens of thousands, a rate of 1/22,026 per unit) has run off
# towards the edge of the parameter space: the likelihood is flat in it, and the "optimum" is wherever the
# optimiser stopped. Such a fit can converge by the gradient test yet say nothing the data support.
RUNAWAY_LOG_PARAMETER = 10.0


class FitError(ValueError):
    """The data cannot identify the model (too few customers, no repeat purchases, …): nothing was fitted."""


@dataclass(frozen=True)
class FitResult:
    model: str
    params: dict[str, float]
    log_likelihood: float
    customers: float
    rows: int
    converged: bool
    iterations: int
    message: str
    gradient_norm: float
    std_errors: dict[str, float | None] = field(default_factory=dict)
    # Why the fit must not be used for predictions (empty: usable); see `assess`.
    problems: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.converged and not self.problems

    @property
    def aic(self) -> float:
        return 2 * len(self.params) - 2 * self.log_likelihood

    @property
    def bic(self) -> float:
        return len(self.params) * float(np.log(self.customers)) - 2 * self.log_likelihood

    def values(self) -> np.ndarray:
        return np.array(list(self.params.values()))


def assess(
    result: FitResult,
    *,
    customers: float,
    minimum_customers: int,
    informative: float,
    minimum_informative: int,
    informative_name: str,
) -> FitResult:
    """The result with `problems` filled: the reasons the data cannot support the fit (none: usable).

    A fit is not used when it did not converge, when a parameter ran off towards a bound, when a standard error
    is missing or not finite (the information matrix is singular: some parameter is not identified), or when
    there are too few customers (or too few of those that inform the model, e.g. repeat buyers) for four
    parameters to mean anything. Each reason is a sentence for the fit resource.
    """
    problems: list[str] = []
    if not result.converged:
        problems.append(result.message if result.message.startswith("not converged") else f"not converged: {result.message}")
    runaway = {k: v for k, v in result.params.items() if not np.isfinite(v) or v <= 0 or abs(np.log(v)) >= RUNAWAY_LOG_PARAMETER}
    if runaway:
        problems.append(
            "parameter(s) at a bound of the search (beyond e^±10: the likelihood is flat in them): "
            + ", ".join(f"{k} = {v:.4g}" for k, v in runaway.items())
        )
    missing = [k for k, se in result.std_errors.items() if se is None or not np.isfinite(se) or se <= 0]
    if missing and result.converged:
        problems.append(
            f"no finite standard error for {', '.join(missing)}: the information matrix is singular, "
            "the data do not identify the model"
        )
    if customers < minimum_customers:
        problems.append(f"too little data: {customers:g} customers, at least {minimum_customers} needed")
    if informative < minimum_informative:
        problems.append(f"too little data: {informative:g} {informative_name}, at least {minimum_informative} needed")
    return replace(result, problems=tuple(problems))


def fit(
    name: str,
    param_names: Sequence[str],
    loglik: LogLik[D],
    data: D,
    customers: float,
    rows: int,
    starts: Sequence[Sequence[float]],
    max_evaluations: int = 1500,
) -> FitResult:
    """Maximise `loglik` from each start until one converges, within one budget of evaluations; the best wins."""
    from scipy.optimize import minimize

    evaluations = 0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        params = np.exp(theta)
        ll, grad = loglik(params, data)
        if not np.isfinite(ll):
            # Steer the line search away from a region the model cannot evaluate instead of failing.
            return 1e10, np.zeros_like(theta)
        return -ll / customers, -(grad * params) / customers

    best: tuple[bool, float, OptimizeResult, float, bool] | None = None
    for start in starts:
        budget = max_evaluations - evaluations
        if best is not None and budget < 50:
            break
        res = minimize(
            objective,
            np.log(np.asarray(start, dtype=np.float64)),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(param_names),
            options={"maxfun": budget, "maxiter": budget, "ftol": 1e-14, "gtol": 1e-9, "maxcor": 20},
        )
        gnorm = float(np.max(np.abs(res.jac))) if res.jac is not None else float("inf")
        at_bound = bool(np.any(np.abs(res.x) >= LOG_BOUND - 1e-6))
        converged = bool(np.isfinite(res.fun) and gnorm < GRADIENT_TOLERANCE and not at_bound)
        candidate = (converged, -res.fun, res, gnorm, at_bound)
        if best is None or (candidate[0], candidate[1]) > (best[0], best[1]):
            best = candidate
        if converged or res.success:
            # The optimiser found a stationary point by its own criteria: another start lands in the same place
            # (a flat ridge) far more often than in a better optimum, and costs as much again.
            break
    if best is None:
        raise ValueError("fit needs at least one start")
    converged, _, res, gnorm, at_bound = best
    params = np.exp(res.x)
    ll, _ = loglik(params, data)
    message = str(res.message)
    if at_bound:
        message = "a parameter ran to its bound: the data do not identify the model"
    elif not converged and np.max(np.abs(res.x)) > 4.5:
        message = (
            f"not converged: the likelihood is nearly flat as a parameter grows without limit "
            f"({dict(zip(param_names, np.round(params, 4).tolist(), strict=True))}); "
            f"the data do not identify this model's heterogeneity (max |gradient| {gnorm:.2e})"
        )
    elif not converged:
        message = f"not converged (max |gradient| {gnorm:.2e}): {message}"
    std_errors = standard_errors(loglik, params, data) if converged else [None] * len(params)
    return FitResult(
        model=name,
        params=dict(zip(param_names, params.tolist(), strict=True)),
        log_likelihood=float(ll),
        customers=float(customers),
        rows=int(rows),
        converged=converged,
        iterations=int(res.nit),
        message=message,
        gradient_norm=gnorm,
        std_errors=dict(zip(param_names, std_errors, strict=True)),
    )


def hessian(loglik: LogLik[D], params: np.ndarray, data: D, base: np.ndarray | None = None) -> np.ndarray:
    """Forward differences of the analytic gradient (natural parameters), symmetrised: k + 1 evaluations.

    At the optimum the gradient is ~0, so a relative step of 1e-6 leaves ~1e-6 relative error on the
    standard errors — far below their own sampling error, at half the cost of central differences.
    """
    k = len(params)
    h = np.empty((k, k))
    base = loglik(params, data)[1] if base is None else base
    for i in range(k):
        step = 1e-6 * max(abs(params[i]), 1e-8)
        up = params.copy()
        up[i] += step
        h[i] = (loglik(up, data)[1] - base) / step
    return (h + h.T) / 2


def standard_errors(loglik: LogLik[D], params: np.ndarray, data: D) -> list[float | None]:
    """Square roots of the inverse observed information's diagonal; None where it is not positive definite."""
    info = -hessian(loglik, params, data)
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return [None] * len(params)
    diag = np.diag(cov)
    if not np.all(np.isfinite(diag)) or np.any(diag <= 0):
        return [None] * len(params)
    return np.sqrt(diag).tolist()


Full = Callable[[np.ndarray, D], tuple[float, np.ndarray, np.ndarray]]


def with_numeric_hessian(loglik: LogLik[D]) -> Full[D]:
    def full(params: np.ndarray, data: D) -> tuple[float, np.ndarray, np.ndarray]:
        ll, grad = loglik(params, data)
        return ll, grad, hessian(loglik, params, data, base=grad)

    return full


def newton(
    name: str,
    param_names: Sequence[str],
    full: Full[D],
    data: D,
    customers: float,
    rows: int,
    start: Sequence[float] | np.ndarray,
    max_iterations: int = 12,
) -> FitResult | None:
    """Newton's method on log-parameters from a start near the optimum (a pilot fit, moment estimates).

    `full` gives the log-likelihood, its gradient and its Hessian in the natural parameters. Each iteration is
    one such evaluation, convergence is quadratic, and the Hessian at the optimum gives the standard errors.
    Returns None when the start is not in the optimum's basin (Hessian not negative definite, no ascent), for
    the caller to fall back to L-BFGS-B.
    """
    params = np.asarray(start, dtype=np.float64)
    ll, grad, h = full(params, data)
    for iteration in range(1, max_iterations + 1):
        if not (np.isfinite(ll) and np.all(np.isfinite(grad)) and np.all(np.isfinite(h))):
            return None
        g_theta = params * grad
        if np.max(np.abs(g_theta)) / customers < 1e-8:
            return _result(name, param_names, params, ll, customers, rows, iteration, g_theta, h)
        h_theta = params[:, None] * h * params[None, :] + np.diag(g_theta)
        try:
            np.linalg.cholesky(-h_theta)
        except np.linalg.LinAlgError:
            return None
        step = -np.linalg.solve(h_theta, g_theta)
        theta = np.log(params)
        for _ in range(20):
            trial = np.exp(np.clip(theta + step, -LOG_BOUND, LOG_BOUND))
            trial_ll, trial_grad, trial_h = full(trial, data)
            if np.isfinite(trial_ll) and trial_ll >= ll - 1e-12 * abs(ll):
                break
            step /= 2
        else:
            return None
        params, ll, grad, h = trial, trial_ll, trial_grad, trial_h
    return None


def _result(name, param_names, params, ll, customers, rows, iterations, g_theta, h) -> FitResult:
    std_errors: list[float | None] = [None] * len(params)
    try:
        cov = np.linalg.inv(-h)
        diag = np.diag(cov)
        if np.all(np.isfinite(diag)) and np.all(diag > 0):
            std_errors = np.sqrt(diag).tolist()
    except np.linalg.LinAlgError:
        pass
    gnorm = float(np.max(np.abs(g_theta)) / customers)
    return FitResult(
        model=name,
        params=dict(zip(param_names, params.tolist(), strict=True)),
        log_likelihood=float(ll),
        customers=float(customers),
        rows=int(rows),
        converged=gnorm < GRADIENT_TOLERANCE,
        iterations=iterations,
        message="converged (Newton)",
        gradient_norm=gnorm,
        std_errors=dict(zip(param_names, std_errors, strict=True)),
    )
