"""RFM scores 1–5 by quantiles, and named segments from a scheme, vectorised with numpy.

Score rule: customers are ranked by value; a tie group gets the mean of the ranks it spans (so equal values
always get equal scores), and a rank r among n maps to score ceil(5·(r−1)/(n−1)), at least 1 — the
equal-count quintiles of `pandas.qcut` over ranks. Without ties this is exactly the `rfm` package's
`qcut(rank(method="first"), 5)`. Recency is scored on days since the last purchase, reversed (recent = 5).
A single customer, or all-equal values, score 3 (the middle). All in integer arithmetic: no edge wobble.
"""

from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86400


def quantile_scores(values: np.ndarray) -> np.ndarray:
    """1–5 per value, higher value → higher score; equal values → equal scores."""
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.int8)
    if n == 1:
        return np.full(1, 3, dtype=np.int8)
    if np.issubdtype(values.dtype, np.integer):
        low = int(values.min())
        span = int(values.max()) - low + 1
        if span <= 4 * n + 1024:
            # Integers in a small range (days, order counts): ranks by counting, no sort.
            offsets = (values - low).astype(np.intp)
            counts = np.bincount(offsets, minlength=span)
            ends = np.cumsum(counts)
            return _scores_of_groups(ends - counts, ends, n)[offsets]
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    scores = np.empty(n, dtype=np.int8)
    scores[order] = np.repeat(_scores_of_groups(starts, ends, n), ends - starts)
    return scores


def _scores_of_groups(starts: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """Score of each tie group spanning 0-based positions [start, end) of the sorted values."""
    # Twice the mean 1-based rank of the group, an integer: (start + 1) + end.
    twice_rank = (starts + 1 + ends).astype(np.int64)
    numerator = 5 * (twice_rank - 2)
    denominator = 2 * (n - 1)
    return np.maximum(1, -(-numerator // denominator)).astype(np.int8)


def reversed_scores(values: np.ndarray) -> np.ndarray:
    """1–5 where a lower value is better (recency in days): 6 − score."""
    return (6 - quantile_scores(values)).astype(np.int8)


@dataclass(frozen=True)
class RfmScores:
    r: np.ndarray
    f: np.ndarray
    m: np.ndarray
    recency_days: np.ndarray


def rfm_scores(last_purchase_epoch: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, as_of_epoch: float) -> RfmScores:
    recency_days = np.floor((as_of_epoch - last_purchase_epoch) / SECONDS_PER_DAY).astype(np.int64)
    return RfmScores(
        r=reversed_scores(recency_days), f=quantile_scores(frequency), m=quantile_scores(monetary), recency_days=recency_days
    )


def scheme_lookup(segments: list[dict]) -> np.ndarray:
    """5×5 table: cell (r−1, f−1) → index of the scheme segment covering it (schemes are validated to cover all)."""
    table = np.full((5, 5), -1, dtype=np.int16)
    for i, s in enumerate(segments):
        table[s["r"][0] - 1 : s["r"][1], s["f"][0] - 1 : s["f"][1]] = i
    return table


def assign_segments(r: np.ndarray, f: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    return lookup[r.astype(np.intp) - 1, f.astype(np.intp) - 1]


def coverage_problems(segments: list[dict]) -> list[str]:
    """Why a scheme does not cover every R×F cell exactly once (empty when it does)."""
    problems = []
    count = np.zeros((5, 5), dtype=np.int16)
    owners: dict[tuple[int, int], list[str]] = {}
    for s in segments:
        for r in range(s["r"][0], s["r"][1] + 1):
            for f in range(s["f"][0], s["f"][1] + 1):
                count[r - 1, f - 1] += 1
                owners.setdefault((r, f), []).append(s["key"])
    missing = [f"R{r + 1}F{f + 1}" for r, f in zip(*np.nonzero(count == 0), strict=True)]
    if missing:
        problems.append(f"cells not covered by any segment: {', '.join(missing)}")
    overlap = [f"R{r}F{f} ({' and '.join(k)})" for (r, f), k in sorted(owners.items()) if len(k) > 1]
    if overlap:
        problems.append(f"cells covered more than once: {', '.join(overlap)}")
    return problems


def segment_summary(segment_index: np.ndarray, monetary: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, revenue) per segment index."""
    size = np.bincount(segment_index, minlength=k)
    revenue = np.bincount(segment_index, weights=monetary, minlength=k)
    return size, revenue
