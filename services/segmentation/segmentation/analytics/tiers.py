"""Value tiers: Pareto/ABC by revenue share, and the value × engagement portfolio quadrants.

ABC: customers by revenue, highest first; a customer is A while the revenue of everyone strictly ahead of
them is below 80% of the total, B below 95%, C after. Equal revenue → same class (the share ahead is the
same for the whole tie group). Zero total revenue → everyone C.
"""

import numpy as np

ABC_CLASSES = ["A", "B", "C"]
QUADRANTS = ["maintain", "invest", "develop", "let-go"]


def abc_classes(revenue: np.ndarray, a_share: float = 0.80, b_share: float = 0.95) -> np.ndarray:
    """0 = A, 1 = B, 2 = C per customer."""
    n = len(revenue)
    classes = np.full(n, 2, dtype=np.int8)
    total = float(revenue.sum())
    if n == 0 or total <= 0:
        return classes
    order = np.argsort(-revenue, kind="stable")
    ordered = revenue[order]
    cumulative_before = np.r_[0.0, np.cumsum(ordered)[:-1]]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    share_ahead = cumulative_before[starts][group_of] / total
    ordered_classes = np.where(share_ahead < a_share, 0, np.where(share_ahead < b_share, 1, 2)).astype(np.int8)
    classes[order] = ordered_classes
    return classes


VALUE_BASES = ["clv", "revenue"]  # value basis index 1, 2 (0: none)


def portfolio_quadrants(
    value: np.ndarray, engagement: np.ndarray, group: np.ndarray | None = None
) -> tuple[np.ndarray, dict[int, float], float]:
    """0 maintain (high value, high engagement), 1 invest (high, low), 2 develop (low, high), 3 let go (low, low).

    Values are only comparable inside a group (one currency and one basis: a USD CLV is not judged against a EUR
    threshold, nor a CLV against revenue to date), so the value threshold is the median *of the customer's
    group*: high value = at or above it and above zero. High engagement: at or above the median engagement
    (the mean of the R and F scores, quantile scores over everyone, so one threshold for all). Returns the
    quadrant per customer, the value threshold per group and the engagement threshold.
    """
    n = len(value)
    if n == 0:
        return np.empty(0, dtype=np.int8), {}, 0.0
    if group is None:
        group = np.zeros(n, dtype=np.int64)
    engagement_cut = float(np.median(engagement))
    high_value = np.zeros(n, dtype=bool)
    value_cuts: dict[int, float] = {}
    order = np.argsort(group, kind="stable")
    ordered = group[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], n], strict=True):
        members = order[start:end]
        cut = float(np.median(value[members]))
        value_cuts[int(ordered[start])] = cut
        high_value[members] = (value[members] >= cut) & (value[members] > 0)
    high_engagement = engagement >= engagement_cut
    quadrant = np.where(high_value, np.where(high_engagement, 0, 1), np.where(high_engagement, 2, 3)).astype(np.int8)
    return quadrant, value_cuts, engagement_cut
