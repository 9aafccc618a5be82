"""Per-customer sufficient statistics and their collapse to unique weighted rows."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Repeat purchases x, time of the last purchase t_x and age T (same unit), one entry per row, with weights."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, x, t_x, T, weights=None) -> "Summary":
        x, t_x, T = (np.asarray(v, dtype=np.float64).ravel() for v in (x, t_x, T))
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        validate(x, t_x, T)
        return cls(x, t_x, T, w)

    @property
    def customers(self) -> float:
        return float(self.weights.sum())


class InvalidSummary(ValueError):
    """Statistics that no model can take (negative counts, recency after age, NaN)."""


def validate(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)):
        raise InvalidSummary("x, t_x and T must have the same length")
    if len(x) == 0:
        raise InvalidSummary("no customers")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise InvalidSummary("x, t_x and T must be finite")
    if (x < 0).any() or (np.floor(x) != x).any():
        raise InvalidSummary("x (repeat purchases) must be a non-negative integer")
    if (t_x < 0).any() or (t_x > T + 1e-9).any():
        raise InvalidSummary("need 0 <= t_x <= T")
    if ((x == 0) & (t_x != 0)).any():
        raise InvalidSummary("t_x must be 0 when x is 0")


def collapse(x, t_x, T, weights=None) -> tuple[Summary, np.ndarray]:
    """Unique (x, t_x, T) rows weighted by how many customers share them, and each customer's row index."""
    stacked = np.column_stack([np.asarray(x, np.float64), np.asarray(t_x, np.float64), np.asarray(T, np.float64)])
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, np.float64)
    counts = np.bincount(inverse, weights=w, minlength=len(unique))
    return Summary.of(unique[:, 0], unique[:, 1], unique[:, 2], counts), inverse
