"""k-means with k chosen in 3..8 (or fixed), descriptions by difference from the mean, identities stable across runs."""

import numpy as np

from segmentation.analytics.clustering import FEATURES, K_RANGE, MIN_SHARE, cluster, describe


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
    assert any("more frequent" in d and "higher spend" in d for d in descriptions), descriptions
    assert any("longer lapsed" in d for d in descriptions), descriptions
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


def test_describe_by_the_largest_standardised_differences():
    assert (
        describe(np.array([-1.2, 0.6, -0.3, 0.1, 0.0]))
        == "much more recent (-1.2 sd), more frequent (+0.6 sd), lower spend (-0.3 sd)"
    )
    assert describe(np.array([0.1, 0.0, 0.0, 0.9, 0.0])) == "longer-standing (+0.9 sd)"
    assert describe(np.zeros(5)) == "close to the average customer on every feature"


def two_groups(seed: int = 0) -> np.ndarray:
    """Two well separated groups, each a continuum inside: the silhouette score is highest at k = 2."""
    rng = np.random.default_rng(seed)
    parts = []
    for centre, n in (((10, 12, 1500, 600, 3), 1500), ((250, 1, 40, 200, 0.2), 3500)):
        parts.append(np.abs(np.array(centre) * rng.lognormal(0, 0.35, size=(n, 5))))
    return np.vstack(parts)


def test_k_is_chosen_in_the_useful_range_with_no_tiny_cluster():
    data = two_groups()
    result = cluster(data)
    # (Before: k = 2, the silhouette's favourite on such data: "loyal" against "everyone else".)
    assert result.k in K_RANGE and 2 not in result.candidates
    assert set(result.candidates) == set(K_RANGE)
    shares = np.bincount(result.labels) / len(data)
    assert shares.min() >= MIN_SHARE * 0.5, "the final fit on everyone keeps the sample's cluster sizes roughly"
    assert result.smallest_share[result.k] >= MIN_SHARE
    assert result.silhouette == max(v for k, v in result.candidates.items() if result.smallest_share[k] >= MIN_SHARE)
    for c in result.clusters.values():
        assert c["description"] != "close to the average customer on every feature" or len(result.clusters) == 1
        z = np.abs(np.array(c["z"]))
        if c["distinguishing"]:
            assert c["distinguishing"][0]["feature"] == FEATURES[int(z.argmax())], "largest difference first"


def test_the_caller_can_fix_k():
    data = two_groups()
    for k in (2, 5):
        result = cluster(data, k=k)
        assert result.k == k and result.fixed and set(result.candidates) == {k}
        assert len(np.unique(result.labels)) == k
    # More clusters than distinct customers: capped.
    assert cluster(np.array([[1, 1, 1, 1, 1], [9, 9, 9, 9, 9], [50, 1, 3, 4, 5]] * 4, dtype=float), k=8).k == 2
