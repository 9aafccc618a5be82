"""Per-customer sufficient statistics and their collapse to unique weighted rows."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class SummaryIndex:
    """Distinct values of x, T and t_x with each row's position: special functions are evaluated once per value."""

    ux: np.ndarray
    ix: np.ndarray
    wx: np.ndarray  # Σ weights per distinct x
    uT: np.ndarray
    iT: np.ndarray
    utx: np.ndarray
    itx: np.ndarray


def _distinct(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, inverse = np.unique(v, return_inverse=True)
    return u, inverse.ravel()


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

    @cached_property
    def index(self) -> SummaryIndex:
        ux, ix = _distinct(self.x)
        uT, iT = _distinct(self.T)
        utx, itx = _distinct(self.t_x)
        return SummaryIndex(
            ux=ux, ix=ix, wx=np.bincount(ix, weights=self.weights, minlength=len(ux)), uT=uT, iT=iT, utx=utx, itx=itx
        )


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


def collapse(x, t_x, T, weights=None, resolution: float = 1.0, with_inverse: bool = True) -> tuple[Summary, np.ndarray | None]:
    """Unique (x, t_x, T) rows weighted by how many customers share them, and each customer's row index.

    When t_x and T are whole multiples of `resolution` (days in a weekly model: resolution = 1/7), the three
    columns pack into one integer key; without the inverse, a histogram of the keys (no sort at all) does the
    work when their range is small. Otherwise each column is coded first and the codes are sorted.
    """
    x, t_x, T = (np.asarray(v, np.float64).ravel() for v in (x, t_x, T))
    validate(x, t_x, T)
    w = None if weights is None else np.asarray(weights, np.float64).ravel()
    steps_tx, steps_T = np.rint(t_x / resolution), np.rint(T / resolution)
    span = int(steps_T.max()) + 1
    key_range = (int(x.max()) + 1) * span * span
    tolerance = 1e-9 * resolution
    if (
        key_range < 2**62
        and np.max(np.abs(steps_tx * resolution - t_x)) <= tolerance
        and np.max(np.abs(steps_T * resolution - T)) <= tolerance
    ):
        key = (x.astype(np.int64) * span + steps_tx.astype(np.int64)) * span + steps_T.astype(np.int64)
        if not with_inverse and key_range <= 64 * len(key) + 10_000_000:
            counts = np.bincount(key, weights=w, minlength=key_range)
            present = np.flatnonzero(counts)
            ux, rest = np.divmod(present, span * span)
            utx, uT = np.divmod(rest, span)
            return Summary(ux.astype(np.float64), utx * resolution, uT * resolution, counts[present]), None
    else:
        codes = [_distinct(c) for c in (x, t_x, T)]
        key = codes[0][1].astype(np.int64)
        for values, inverse in codes[1:]:
            key = key * len(values) + inverse
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, weights=w, minlength=len(first))
    return Summary(x[first], t_x[first], T[first], counts), inverse if with_inverse else None


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS: on a busy machine a multithreaded BLAS dot of long vectors waits for its threads
    (tens of milliseconds per call instead of one), and the likelihoods take a dozen dots per evaluation."""
    return float(np.multiply(a, b).sum())
