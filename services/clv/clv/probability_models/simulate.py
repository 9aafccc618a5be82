"""Draws from the models' generative stories: test data with known parameters, and the benchmark's population."""

import numpy as np


def bgnbd(T: np.ndarray, r: float, alpha: float, a: float, b: float, rng: np.random.Generator):
    """(x, t_x) per customer of age T under BG/NBD."""
    T = np.asarray(T, dtype=np.float64)
    lam = rng.gamma(r, 1.0 / alpha, len(T))
    p = rng.beta(a, b, len(T))
    opportunities = rng.poisson(lam * T)  # purchases in (0, T] had the customer stayed
    lifetime_purchases = rng.geometric(p)  # the repeat purchase after which they drop out
    x = np.minimum(opportunities, lifetime_purchases)
    # Given n events in (0, T], the k-th arrival is T · Beta(k, n − k + 1).
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(opportunities - x + 1, 1)), 0.0)
    return x.astype(np.float64), t_x


def pareto_nbd(T: np.ndarray, r: float, alpha: float, s: float, beta: float, rng: np.random.Generator):
    T = np.asarray(T, dtype=np.float64)
    lam = rng.gamma(r, 1.0 / alpha, len(T))
    mu = rng.gamma(s, 1.0 / beta, len(T))
    active = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return x.astype(np.float64), t_x


def gamma_gamma(x: np.ndarray, p: float, q: float, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """Mean spend over x repeat purchases (0 where x = 0)."""
    x = np.asarray(x, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / gamma, len(x))
    total = rng.gamma(np.maximum(p * x, 1e-12), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1), 0.0)
