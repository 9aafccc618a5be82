"""k-means with k by silhouette, descriptions in words, identities stable across runs."""

import numpy as np

from segmentation.analytics.clustering import FEATURES, cluster, describe


def blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # recency, frequency, monetary, tenure, engagement
    centres = [(5, 20, 2000, 700, 4), (300, 1, 30, 400, 0.1), (20, 2, 50, 30, 2)]
    parts = [np.abs(rng.normal(c, np.array(c) * 0.05 + 0.01, size=(300, 5))) for c in centres]
    return np.vstack(parts)


def test_separated_groups_are_found_and_described():
    result = cluster(blobs())
    assert result.k == 3 and result.silhouette > 0.5
    descriptions = sorted(c["description"] for c in result.clusters.values())
    assert any("recent" in d and "frequent" in d and "high spend" in d for d in descriptions), descriptions
    assert any("lapsed" in d and "low spend" in d for d in descriptions), descriptions
    assert np.bincount(result.labels).tolist() == [300, 300, 300]


def test_identities_stay_with_the_same_behaviour_across_runs():
    first = cluster(blobs(0))
    previous = {label: [c["centroid"][f] for f in FEATURES] for label, c in first.clusters.items()}
    # The next run sees the customers in another order (and slightly different data).
    data = blobs(1)
    order = np.random.default_rng(5).permutation(len(data))
    second = cluster(data[order], previous, seed=3)
    labels = np.empty_like(second.labels)
    labels[order] = second.labels
    assert (labels == first.labels).all()
    for label, c in second.clusters.items():
        before = first.clusters[label]["centroid"]["monetary"]
        assert abs(c["centroid"]["monetary"] - before) < 0.2 * before


def test_degenerate_populations():
    assert cluster(np.ones((1, 5))).k == 1
    same = cluster(np.ones((50, 5)))
    assert same.k == 1 and same.labels.tolist() == [0] * 50 and same.silhouette is None
    assert cluster(np.empty((0, 5))).k == 0


def test_describe_words():
    assert describe(np.array([-1.0, 1.0, -1.0, 0.0, 0.0])) == "recent, frequent, low spend"
    assert describe(np.zeros(5)) == "average on every dimension"
