"""Pareto/NBD's log-likelihood with its analytic gradient, by a series evaluated once per distinct (x, t).

The likelihood's dropout term needs G(t) = ∫_t^∞ (α+τ)^−(r+x) (β+τ)^−(s+1) dτ at t = t_x and t = T (the
customer's term is s·[G(t_x) − G(T)]). With ρ = r + s + x, Euler's transformation of Fader & Hardie's
2F1(ρ, ·; ρ+1; z) gives

    G(t) = c^−ρ / ρ · (1 − z)^−e · H,    H = 2F1(1, u; ρ+1; z) = Σ_n (u)_n / (ρ+1)_n · z^n

    α ≥ β:  c = α + t,  z = (α − β)/(α + t),  e = s,          u = r + x
    α < β:  c = β + t,  z = (β − α)/(β + t),  e = r + x − 1,  u = s + 1

Both u ≤ ρ + 1, so every term is at most z times the one before: the positive series converges at least
geometrically, H lies in [1, 1/(1 − z)], and neither overflows for any x. Differentiating the series term
by term gives ∂H/∂u, ∂H/∂ρ and ∂H/∂z in the same pass (digamma differences accumulate as running sums of
1/(u + k) and 1/(ρ + 1 + k)); 2F1's parameter derivatives have no closed form, its series' do.

G depends on (x, t) only, and a population has far fewer distinct (x, t) pairs than (x, t_x, T) rows (1M
simulated customers: ~7k pairs against 183k rows), so the series runs per pair and is gathered back.

The series shrinks like z^n: near z = 1 (α and β thousands of times apart, which only happens far from an
optimum, on data that do not identify the model) it would need hundreds of thousands of terms per evaluation
(3 customers: 2.7 s per fit instead of 0.1 s). It stops after MAX_TERMS; the pairs it has not summed by then
take log G from scipy's hyp2f1 (Fader & Hardie's form, as `ParetoNBD._rows`) and its gradient from central
differences of that, which is what every evaluation cost before the series.
"""

import numpy as np

from clv.probability_models import special
from clv.probability_models.data import Summary, dot

BLOCK = 32  # series terms per vectorised step
TOLERANCE = 1e-17  # stop when the remaining tail is below this fraction of the sum
# Enough for every pair near an optimum (CDNOW, simulated millions: a few hundred terms at most); the rest fall
# back to hyp2f1 (see above).
MAX_TERMS = 2048
# Relative step of the central differences of the hyp2f1 form (as the numerical gradient before the series).
FALLBACK_STEP = 1e-6


def _pairs(data: Summary):
    """Distinct (x, t) over t ∈ {t_x, T}: values, and each row's pair for t_x and for T (cached on the data)."""
    cached = data.__dict__.get("_pareto_pairs")
    if cached is None:
        ut, it = np.unique(np.concatenate([data.t_x, data.T]), return_inverse=True)
        ux, ix = data.index.ux, data.index.ix
        key = np.concatenate([ix, ix]).astype(np.int64) * len(ut) + it.ravel()
        keys, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.ravel()
        n = len(data.x)
        cached = (ux[keys // len(ut)], ut[keys % len(ut)], inverse[:n], inverse[n:])
        data.__dict__["_pareto_pairs"] = cached  # as functools.cached_property does (the dataclass is frozen)
    return cached


def _series(u: np.ndarray, rho: np.ndarray, z: np.ndarray):
    """H = Σ (u)_n/(ρ+1)_n z^n and H·∂log H/∂u, H·∂log H/∂ρ, H·∂log H/∂z per entry, and the entries whose
    sums had not converged after MAX_TERMS terms."""
    u, rho = (np.broadcast_to(np.asarray(v, dtype=np.float64), z.shape) for v in (u, rho))
    m = len(z)
    H, Hu, Hrho, Hz = np.ones(m), np.zeros(m), np.zeros(m), np.zeros(m)
    term = np.ones(m)  # h_n, starting at n = 0
    du = np.zeros(m)  # Σ_{k<n} 1/(u+k)
    drho = np.zeros(m)  # −Σ_{k<n} 1/(ρ+1+k)
    active = np.flatnonzero(z > 0)
    n0 = 0
    steps = np.arange(BLOCK, dtype=np.float64)
    while len(active) and n0 < MAX_TERMS:
        ua, ra, za = u[active, None], rho[active, None], z[active, None]
        k = n0 + steps[None, :]  # the terms' indices n0 … n0+B−1 move to n+1
        ratio = (ua + k) / (ra + 1 + k) * za
        terms = term[active, None] * np.cumprod(ratio, axis=1)  # h_{n0+1} … h_{n0+B}
        dus = du[active, None] + np.cumsum(1.0 / (ua + k), axis=1)
        drhos = drho[active, None] - np.cumsum(1.0 / (ra + 1 + k), axis=1)
        H[active] += terms.sum(axis=1)
        Hu[active] += (terms * dus).sum(axis=1)
        Hrho[active] += (terms * drhos).sum(axis=1)
        Hz[active] += (terms * (k + 1)).sum(axis=1) / z[active]
        term[active], du[active], drho[active] = terms[:, -1], dus[:, -1], drhos[:, -1]
        n0 += BLOCK
        # The tail after h_n is below h_n · z/(1 − z) (each ratio < z); the derivative sums' tails shrink alike
        # up to their slowly growing weights.
        tail = term[active] * (1 + n0) / (1 - z[active])
        active = active[tail > TOLERANCE * H[active]]
    at_zero = z == 0  # α = β: the series is 1; its slope in z is the first term's, u/(ρ+1)
    Hz[at_zero] = u[at_zero] / (rho[at_zero] + 1)
    return H, Hu, Hrho, Hz, active


def _hypergeometric_log_g(params: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """log G = log F(t) − log ρ with F = 2F1(ρ, b; ρ+1; z)/c^ρ, scipy's hyp2f1 (the form of `ParetoNBD._rows`)."""
    r, alpha, s, beta = params
    rho = r + s + x
    if alpha >= beta:
        c = alpha + t
        f = special.hyp2f1(rho, s + 1, rho + 1, (alpha - beta) / c)
    else:
        c = beta + t
        f = special.hyp2f1(rho, r + x, rho + 1, (beta - alpha) / c)
    return np.log(f) - rho * np.log(c) - np.log(rho)


def _fallback(params: np.ndarray, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log G and its gradient for the pairs the series did not sum: hyp2f1 and central differences of it."""
    value = _hypergeometric_log_g(params, x, t)
    grad = np.empty((4, len(x)))
    for i in range(4):
        h = FALLBACK_STEP * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (_hypergeometric_log_g(up, x, t) - _hypergeometric_log_g(down, x, t)) / (2 * h)
    return value, grad


def log_g(params: np.ndarray, x: np.ndarray, t: np.ndarray):
    """log G(t) per (x, t) and its gradient in (r, α, s, β) (shape (4, n))."""
    r, alpha, s, beta = params
    rho = r + s + x
    if alpha >= beta:
        c = alpha + t
        z = (alpha - beta) / c
        e, u = s, r + x
    else:
        c = beta + t
        z = (beta - alpha) / c
        e, u = r + x - 1, s + 1
    H, Hu, Hrho, Hz, unsummed = _series(u, rho, z)
    log_c, log1mz = np.log(c), np.log1p(-z)
    value = -rho * log_c - np.log(rho) - e * log1mz + np.log(H)
    dH_u, dH_rho, dH_z = Hu / H, Hrho / H, Hz / H
    # ∂/∂ρ of −ρ log c − log ρ (ρ depends on r and s with slope 1).
    d_rho = -log_c - 1.0 / rho + dH_rho
    # ∂ log G/∂z: −e · ∂log(1−z) + ∂log H.
    d_z = e / (1 - z) + dH_z
    grad = np.empty((4, len(x)))
    if alpha >= beta:
        # c = α + t, z = (α − β)/c: ∂z/∂α = (β + t)/c², ∂z/∂β = −1/c; e = s, u = r + x.
        grad[0] = d_rho + dH_u
        grad[1] = -rho / c + d_z * (beta + t) / c**2
        grad[2] = d_rho - log1mz
        grad[3] = -d_z / c
    else:
        # c = β + t, z = (β − α)/c: ∂z/∂β = (α + t)/c², ∂z/∂α = −1/c; e = r + x − 1, u = s + 1.
        grad[0] = d_rho - log1mz
        grad[1] = -d_z / c
        grad[2] = d_rho + dH_u
        grad[3] = -rho / c + d_z * (alpha + t) / c**2
    if len(unsummed):
        value[unsummed], grad[:, unsummed] = _fallback(np.asarray(params, dtype=np.float64), x[unsummed], t[unsummed])
    return value, grad


def loglik(params: np.ndarray, data: Summary) -> tuple[float, np.ndarray]:
    """Σ w · log L and its analytic gradient; L = Γ(r+x)α^r β^s/Γ(r) · [(α+T)^−(r+x) (β+T)^−s + s (G(t_x) − G(T))]."""
    r, alpha, s, beta = params
    px, pt, i_tx, i_T = _pairs(data)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        g, dg = log_g(params, px, pt)
        w, x, T = data.weights, data.x, data.T
        ix, W = data.index, data.weights.sum()
        ux, wx = ix.ux, ix.wx
        log_aT, log_bT = np.log(alpha + ix.uT)[ix.iT], np.log(beta + ix.uT)[ix.iT]
        l1 = -(r + x) * log_aT - s * log_bT
        g_tx, g_T = g[i_tx], g[i_T]
        # log(G(t_x) − G(T)) = log G(t_x) + log1p(−q), q = G(T)/G(t_x) ∈ [0, 1]; −inf when t_x = T.
        q = np.exp(np.minimum(g_T - g_tx, 0.0))
        l2 = np.log(s) + g_tx + np.log1p(-q)
        top = np.maximum(l1, l2)
        e1, e2 = np.exp(l1 - top), np.exp(l2 - top)
        total = e1 + e2
        w1, w2 = w * e1 / total, w * e2 / total
        ll = (
            wx @ special.gammaln(r + ux)
            + W * (-special.gammaln(r) + r * np.log(alpha) + s * np.log(beta))
            + dot(w, top + np.log(total))
        )
        # ∂ log(G(t_x) − G(T)) = (∂log G(t_x) − q ∂log G(T)) / (1 − q); rows with q = 1 have w2 = 0.
        # Summed per pair first (two histograms), so each parameter's term is a dot product over the pairs.
        inv = np.where(q < 1, w2 / (1.0 - q), 0.0)
        at_tx = np.bincount(i_tx, weights=inv, minlength=len(px))
        at_T = np.bincount(i_T, weights=inv * q, minlength=len(px))
        grad = dg @ (at_tx - at_T)
        grad[0] += wx @ special.digamma(r + ux) + W * (np.log(alpha) - special.digamma(r)) - dot(w1, log_aT)
        grad[1] += W * r / alpha - dot(w1 * (r + x), 1.0 / (alpha + T))
        grad[2] += W * np.log(beta) - dot(w1, log_bT) + w2.sum() / s
        grad[3] += W * s / beta - s * dot(w1, 1.0 / (beta + T))
    return float(ll), grad
