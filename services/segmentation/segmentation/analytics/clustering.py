"""k-means on scaled behavioural features, k chosen in a useful range, clusters described by how they differ.

Features per customer: recency (days since last purchase), frequency (orders), monetary (spend), tenure
(days since first seen) and engagement (purchases + touchpoints per 30 days of tenure). They are skewed, so
each goes through log1p, then a StandardScaler.

Choosing k. A marketer needs a handful of groups: two is too coarse (one of them is "everyone else"), more
than eight too many to act on. So k is chosen in `K_RANGE` (3..8), never 2: on customer data, which is a
continuum rather than separated blobs, the silhouette score is nearly always highest at k = 2 (one split along
the dominant axis), which is how a run ended with 72% of customers in an "average" cluster. Within the range
the criterion is the silhouette score (mean over a sample; scale-free, comparable across k, unlike inertia),
among the k whose smallest cluster holds at least `MIN_SHARE` of the customers: a k that wins by splitting
off a few outliers does not give a segment anyone can run a campaign on. If no k in the range meets the
share, the best silhouette in the range is used (reported). The caller can fix k instead (`k`, 2..`MAX_K`).
Each candidate is fitted with MiniBatchKMeans on a sample; the final model is fitted on everyone (KMeans when
small, MiniBatchKMeans warm-started from the sample's centroids when large).

Describing a cluster: by the features on which its centroid differs most from the overall mean, in standard
deviations of the (log-scaled) feature — up to `DESCRIBE_TOP` features at least `DESCRIBE_MIN_SD` away,
largest first, with "much" from 1 sd: "much more frequent (+1.4 sd), higher spend (+0.8 sd)". A cluster with
no such feature is "close to the average customer on every feature".

Identities: the new centroids are matched to the previous run's (Hungarian assignment on distance, in
today's scaled space), so "cluster 2" stays the same group of behaviour from run to run; unmatched centroids
get fresh labels.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

# scikit-learn and scipy.optimize are imported by the functions that fit, not here: loaded at import they held
# ~105 MB in every segmentation process, which serves requests and consumes events all day and clusters only
# when a clustering run is asked for (P7: ≤ 150 MB per process; docs/segmentation.md).

FEATURES = ["recency", "frequency", "monetary", "tenure", "engagement"]
K_RANGE = range(3, 9)
MAX_K = 20  # the most a caller may fix
MIN_SHARE = 0.03
SAMPLE_FIT = 20_000
SAMPLE_SILHOUETTE = 4_000
SMALL = 50_000
# (word for below the mean, word for above) per feature.
WORDS = {
    "recency": ("more recent", "longer lapsed"),
    "frequency": ("less frequent", "more frequent"),
    "monetary": ("lower spend", "higher spend"),
    "tenure": ("newer", "longer-standing"),
    "engagement": ("less engaged", "more engaged"),
}
DESCRIBE_TOP = 3
DESCRIBE_MIN_SD = 0.25
MUCH_SD = 1.0
CRITERION = (
    f"silhouette score (on a sample) among k in {K_RANGE.start}..{K_RANGE.stop - 1} whose smallest cluster "
    f"holds at least {MIN_SHARE:.0%} of the customers"
)


@dataclass
class Clustering:
    labels: np.ndarray  # stable label per customer
    k: int
    silhouette: float | None
    candidates: dict[int, float]  # k → silhouette on the sample
    clusters: dict[int, dict]  # stable label → {"centroid", "z", "description", "distinguishing"}
    smallest_share: dict[int, float] = field(default_factory=dict)  # k → smallest cluster's share on the sample
    fixed: bool = False  # k was given by the caller
    criterion: str = CRITERION


def feature_matrix(
    recency_days: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, tenure_days: np.ndarray, touchpoints: np.ndarray
) -> np.ndarray:
    tenure = np.maximum(tenure_days, 1.0)
    engagement = (frequency + touchpoints) * 30.0 / tenure
    return np.column_stack([recency_days, frequency, monetary, tenure_days, engagement]).astype(np.float64)


def distinguishing(z: np.ndarray) -> list[dict]:
    """The features on which a centroid (z-scores: sd from the overall mean) differs most, largest first."""
    order = np.argsort(-np.abs(z), kind="stable")
    out = []
    for i in order[:DESCRIBE_TOP]:
        if abs(z[i]) < DESCRIBE_MIN_SD:
            break
        sd = round(float(z[i]), 1)  # "much" judged as shown: "-1.0 sd" always reads "much"
        low, high = WORDS[FEATURES[i]]
        word = high if sd > 0 else low
        out.append(
            {
                "feature": FEATURES[i],
                "sd_from_mean": round(float(z[i]), 2),
                "words": f"much {word}" if abs(sd) >= MUCH_SD else word,
            }
        )
    return out


def describe(z: np.ndarray) -> str:
    parts = [f"{d['words']} ({d['sd_from_mean']:+.1f} sd)" for d in distinguishing(z)]
    return ", ".join(parts) if parts else "close to the average customer on every feature"


def cluster(raw: np.ndarray, previous: dict[int, list[float]] | None = None, seed: int = 0, k: int | None = None) -> Clustering:
    """`raw`: n × 5 features (FEATURES order); `previous`: stable label → raw centroid of the last run;
    `k`: fixed by the caller (capped at the number of distinct customers), else chosen (see the module doc)."""
    n = len(raw)
    if n == 0:
        return Clustering(np.empty(0, dtype=np.int32), 0, None, {}, {}, fixed=k is not None)
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    x = np.log1p(np.clip(raw, 0, None))
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    # Small fits run single-threaded: OpenMP threads spinning on tiny batches cost 10–100× on a busy machine.
    with threadpool_limits(limits=1):
        best_k, best_centroids, candidates, shares = _choose_k(z, seed, k)
        if best_k == 1:
            labels, centroids = np.zeros(n, dtype=np.int32), best_centroids
        elif n <= SMALL:
            model = KMeans(n_clusters=best_k, init=best_centroids, n_init=1, random_state=seed).fit(z)
            labels, centroids = model.labels_.astype(np.int32), model.cluster_centers_
    if best_k > 1 and n > SMALL:
        model = MiniBatchKMeans(
            n_clusters=best_k, init=best_centroids, n_init=1, random_state=seed, batch_size=8192, max_iter=20
        ).fit(z)
        labels, centroids = model.predict(z).astype(np.int32), model.cluster_centers_
    # The overall mean of z is 0 by construction, so a centroid is its standardised difference from everyone.
    stable = _stable_labels(centroids, scaler, previous or {})
    labels = stable[labels]
    raw_centroids = np.expm1(scaler.inverse_transform(centroids))
    clusters = {
        int(stable[i]): {
            "centroid": {f: round(float(v), 4) for f, v in zip(FEATURES, raw_centroids[i], strict=True)},
            "z": [round(float(v), 4) for v in centroids[i]],
            "description": describe(centroids[i]),
            "distinguishing": distinguishing(centroids[i]),
        }
        for i in range(len(centroids))
    }
    return Clustering(labels, best_k, candidates.get(best_k), candidates, clusters, shares, fixed=k is not None)


def _choose_k(z: np.ndarray, seed: int, fixed: int | None) -> tuple[int, np.ndarray, dict[int, float], dict[int, float]]:
    """(k, its sample centroids, silhouette per k, smallest cluster share per k); k = 1 when the data cannot be
    split. With `fixed`, only that k (capped at the distinct customers) is fitted and scored."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import silhouette_score

    n = len(z)
    rng = np.random.default_rng(seed)
    candidates: dict[int, float] = {}
    shares: dict[int, float] = {}
    centroids: dict[int, np.ndarray] = {}
    one = z.mean(axis=0, keepdims=True)
    distinct = len(np.unique(z[: min(n, 10_000)], axis=0))
    if n < 2 or distinct < 2 or (fixed is None and (n < 10 or distinct < 3)):
        return 1, one, candidates, shares
    sample = z[rng.choice(n, min(n, SAMPLE_FIT), replace=False)]
    limit = min(len(sample), distinct)
    if fixed is not None:
        ks = [min(fixed, limit - 1)] if limit > 2 else []  # the silhouette needs k < customers
    else:
        # Below 4 distinct customers there is no k in the range to choose from: 2 is all the data allows.
        ks = [k for k in K_RANGE if k < limit] or [2]
    for k in ks:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit(sample)
        counts = np.bincount(model.labels_, minlength=k)
        if (counts > 0).sum() < 2:
            continue
        centroids[k] = model.cluster_centers_
        shares[k] = round(float(counts.min() / len(sample)), 4)
        candidates[k] = round(
            float(silhouette_score(sample, model.labels_, sample_size=min(len(sample), SAMPLE_SILHOUETTE), random_state=seed)), 4
        )
    if not candidates:
        return 1, one, candidates, shares
    eligible = [k for k in candidates if shares[k] >= MIN_SHARE] or list(candidates)
    best = max(eligible, key=lambda k: (candidates[k], -k))
    return best, centroids[best], candidates, shares


def _stable_labels(centroids: np.ndarray, scaler: "StandardScaler", previous: dict[int, list[float]]) -> np.ndarray:
    """New centroid index → stable label: the matched previous label, else a fresh one."""
    from scipy.optimize import linear_sum_assignment

    stable = np.full(len(centroids), -1, dtype=np.int32)
    if previous:
        labels = sorted(previous)
        old = scaler.transform(np.log1p(np.clip(np.array([previous[label] for label in labels]), 0, None)))
        cost = np.linalg.norm(centroids[:, None, :] - old[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows, cols, strict=True):
            stable[i] = labels[j]
    fresh = max(previous, default=-1) + 1
    for i in range(len(centroids)):
        if stable[i] < 0:
            stable[i] = fresh
            fresh += 1
    return stable
