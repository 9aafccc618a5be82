"""RFM quantile scores, scheme coverage, ABC classes and the portfolio quadrants: pure numpy, no servers."""

import importlib.util
import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest

from segmentation.analytics.rfm import (
    assign_segments,
    coverage_problems,
    quantile_scores,
    reversed_scores,
    rfm_scores,
    scheme_lookup,
)
from segmentation.analytics.tiers import abc_classes, portfolio_quadrants

MIGRATIONS = Path(__file__).parents[3] / "services/segmentation/segmentation/migrations/versions"
MIGRATION = MIGRATIONS / "2026_11_30_0002_portfolio_analysis.py"


def default_scheme() -> list[dict]:
    spec = importlib.util.spec_from_file_location("m0002", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [{"key": k, "name": n, "r": r, "f": f} for k, n, r, f in module.DEFAULT_SCHEME]


def reference_scores(values: list[float]) -> list[int]:
    """The documented rule, spelled out: mean rank of the tie group → ceil(5(r−1)/(n−1)), at least 1."""
    n = len(values)
    if n == 1:
        return [3]
    ordered = sorted(values)
    out = []
    for v in values:
        first = ordered.index(v) + 1
        last = n - ordered[::-1].index(v)
        rank = (first + last) / 2
        out.append(max(1, math.ceil(5 * (rank - 1) / (n - 1) - 1e-12)))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_scores_follow_the_documented_rule_with_ties(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    values = [rng.choice([0, 0, 1, 2, 3, 5, 8, 13]) + rng.choice([0, 0.5]) for _ in range(n)]
    assert quantile_scores(np.array(values)).tolist() == reference_scores(values)


def test_equal_values_get_equal_scores_and_order_is_kept():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 20, 5000)
    scores = quantile_scores(values)
    for v in np.unique(values):
        assert len(set(scores[values == v].tolist())) == 1
    order = np.argsort(values)
    assert (np.diff(scores[order].astype(int)) >= 0).all()


def test_distinct_values_fill_five_equal_quintiles():
    scores = quantile_scores(np.arange(1000.0))
    assert np.bincount(scores, minlength=6)[1:].tolist() == [200, 200, 200, 200, 200]


def test_tiny_populations_single_customer_and_all_equal():
    assert quantile_scores(np.array([])).tolist() == []
    assert quantile_scores(np.array([42.0])).tolist() == [3]
    assert reversed_scores(np.array([42.0])).tolist() == [3]
    assert quantile_scores(np.full(7, 9.5)).tolist() == [3] * 7
    assert quantile_scores(np.array([1.0, 2.0])).tolist() == [1, 5]
    assert quantile_scores(np.array([1.0, 2.0, 3.0])).tolist() == [1, 3, 5]


def test_zero_spend_customers_score_lowest_on_monetary():
    monetary = np.array([0.0, 0.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    m = quantile_scores(monetary)
    assert m[:3].tolist() == [1, 1, 1] and m[-1] == 5


def test_recency_is_reversed_recent_scores_five():
    day = 86400.0
    last = np.array([100 * day, 50 * day, 10 * day, 99 * day, 1 * day])
    scores = rfm_scores(last, np.ones(5), np.ones(5), as_of_epoch=101 * day)
    assert scores.recency_days.tolist() == [1, 51, 91, 2, 100]
    assert scores.r.tolist() == [5, 3, 2, 4, 1]
    assert scores.f.tolist() == [3] * 5  # all equal frequency: the middle


def test_default_scheme_covers_every_cell_exactly_once():
    scheme = default_scheme()
    assert coverage_problems(scheme) == []
    lookup = scheme_lookup(scheme)
    for r, f in itertools.product(range(1, 6), range(1, 6)):
        owners = [s["key"] for s in scheme if s["r"][0] <= r <= s["r"][1] and s["f"][0] <= f <= s["f"][1]]
        assert len(owners) == 1, (r, f, owners)
        assert scheme[lookup[r - 1, f - 1]]["key"] == owners[0]
    r, f = np.array([5, 5, 1, 3]), np.array([5, 1, 5, 3])
    assert [scheme[i]["key"] for i in assign_segments(r, f, lookup)] == [
        "champions",
        "new-customers",
        "cant-lose-them",
        "need-attention",
    ]


def test_coverage_problems_name_the_gaps_and_overlaps():
    scheme = default_scheme()
    gap = [s for s in scheme if s["key"] != "promising"]
    assert coverage_problems(gap) == ["cells not covered by any segment: R4F1"]
    overlap = scheme + [{"key": "extra", "r": [5, 5], "f": [5, 5]}]
    assert coverage_problems(overlap) == ["cells covered more than once: R5F5 (champions and extra)"]


def test_abc_classes_by_revenue_share_with_ties_together():
    revenue = np.array([50.0, 30.0, 10.0, 5.0, 5.0, 0.0])
    # share ahead: 0, .5, .8, .9, .9, 1.0 → A below .80, B below .95, C after
    assert abc_classes(revenue).tolist() == [0, 0, 1, 1, 1, 2]
    tied = np.array([10.0, 10.0, 10.0, 10.0])
    assert abc_classes(tied).tolist() == [0, 0, 0, 0]
    assert abc_classes(np.zeros(3)).tolist() == [2, 2, 2]
    assert abc_classes(np.array([])).tolist() == []


def test_abc_a_class_holds_at_least_the_a_share():
    rng = np.random.default_rng(7)
    revenue = rng.pareto(1.5, 10_000)
    classes = abc_classes(revenue)
    share_a = revenue[classes == 0].sum() / revenue.sum()
    assert share_a >= 0.80
    assert revenue[classes == 0].min() >= revenue[classes == 1].max()


def test_portfolio_quadrants():
    value = np.array([100.0, 100.0, 1.0, 1.0])
    engagement = np.array([5.0, 1.0, 5.0, 1.0])
    quadrant, value_cuts, engagement_cut = portfolio_quadrants(value, engagement)
    assert quadrant.tolist() == [0, 1, 2, 3]
    assert (value_cuts, engagement_cut) == ({0: 50.5}, 3.0)


def test_portfolio_value_threshold_is_per_group():
    # Group 1's values are 100× group 0's (another currency): each is split at its own median.
    value = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 200.0, 300.0, 400.0])
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    quadrant, value_cuts, _ = portfolio_quadrants(value, np.ones(8), group)
    assert value_cuts == {0: 2.5, 1: 250.0}
    assert (quadrant < 2).tolist() == [False, False, True, True] * 2


@pytest.mark.parametrize("seed", range(5))
def test_integer_counting_path_equals_the_sorting_path(seed):
    rng = np.random.default_rng(seed)
    ints = rng.integers(-5, 40, rng.integers(2, 3000))
    assert (quantile_scores(ints) == quantile_scores(ints.astype(np.float64))).all()
    wide = np.array([0, 10**12, 5, 5])  # range too wide for counting: sorts
    assert quantile_scores(wide).tolist() == quantile_scores(wide.astype(np.float64)).tolist()
