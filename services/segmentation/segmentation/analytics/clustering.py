"""k-means on scaled behavioural features, k chosen by silhouette, clusters described in words and kept stable.

Features per customer: recency (days since last purchase), frequency (orders), monetary (spend), tenure
(days since first seen) and engagement (purchases + touchpoints per 30 days of tenure). They are skewed, so
each goes through log1p, then a StandardScaler. k is chosen from `K_RANGE` by the silhouette score on a sample
(MiniBatchKMeans fitted on the sample for each k); the final model is fitted on everyone (KMeans when small,
MiniBatchKMeans warm-started from the sample's centroids when large). Identities: the new centroids are
matched to the previous run's (Hungarian assignment on distance, in today's scaled space), so "cluster 2"
stays the same group of behaviour from run to run; unmatched centroids get fresh labels.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

FEATURES = ["recency", "frequency", "monetary", "tenure", "engagement"]
K_RANGE = range(2, 9)
SAMPLE_FIT = 20_000
SAMPLE_SILHOUETTE = 4_000
SMALL = 50_000
# (low word, high word) per feature, by the centroid's z-score.
WORDS = {"recency": ("recent", "lapsed"), "frequency": ("infrequent", "frequent"),
         "monetary": ("low spend", "high spend"), "tenure": ("new", "long-standing"),
         "engagement": ("disengaged", "engaged")}
THRESHOLD = 0.5


@dataclass
class Clustering:
    labels: np.ndarray            # stable label per customer
    k: int
    silhouette: float | None
    candidates: dict[int, float]  # k → silhouette on the sample
    clusters: dict[int, dict]     # stable label → {"centroid": {feature: mean}, "description": str, "z": [...]}


def feature_matrix(recency_days: np.ndarray, frequency: np.ndarray, monetary: np.ndarray, tenure_days: np.ndarray,
                   touchpoints: np.ndarray) -> np.ndarray:
    tenure = np.maximum(tenure_days, 1.0)
    engagement = (frequency + touchpoints) * 30.0 / tenure
    return np.column_stack([recency_days, frequency, monetary, tenure_days, engagement]).astype(np.float64)


def describe(z: np.ndarray) -> str:
    words = []
    for name, value in zip(FEATURES, z, strict=True):
        low, high = WORDS[name]
        if value <= -THRESHOLD:
            words.append(low)
        elif value >= THRESHOLD:
            words.append(high)
    return ", ".join(words) if words else "average on every dimension"


def cluster(raw: np.ndarray, previous: dict[int, list[float]] | None = None, seed: int = 0) -> Clustering:
    """`raw`: n × 5 features (FEATURES order); `previous`: stable label → raw centroid of the last run."""
    n = len(raw)
    if n == 0:
        return Clustering(np.empty(0, dtype=np.int32), 0, None, {}, {})
    x = np.log1p(np.clip(raw, 0, None))
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    # Small fits run single-threaded: OpenMP threads spinning on tiny batches cost 10–100× on a busy machine.
    with threadpool_limits(limits=1):
        best_k, best_centroids, candidates = _choose_k(z, seed)
        if best_k == 1:
            labels, centroids = np.zeros(n, dtype=np.int32), best_centroids
        elif n <= SMALL:
            model = KMeans(n_clusters=best_k, init=best_centroids, n_init=1, random_state=seed).fit(z)
            labels, centroids = model.labels_.astype(np.int32), model.cluster_centers_
    if best_k > 1 and n > SMALL:
        model = MiniBatchKMeans(n_clusters=best_k, init=best_centroids, n_init=1, random_state=seed,
                                batch_size=8192, max_iter=20).fit(z)
        labels, centroids = model.predict(z).astype(np.int32), model.cluster_centers_
    stable = _stable_labels(centroids, scaler, previous or {})
    labels = stable[labels]
    raw_centroids = np.expm1(scaler.inverse_transform(centroids))
    clusters = {
        int(stable[i]): {
            "centroid": {f: round(float(v), 4) for f, v in zip(FEATURES, raw_centroids[i], strict=True)},
            "z": [round(float(v), 4) for v in centroids[i]],
            "description": describe(centroids[i]),
        }
        for i in range(len(centroids))
    }
    return Clustering(labels, best_k, candidates.get(best_k), candidates, clusters)


def _choose_k(z: np.ndarray, seed: int) -> tuple[int, np.ndarray, dict[int, float]]:
    """The k in K_RANGE with the best silhouette on a sample (1 when the data cannot be split)."""
    n = len(z)
    rng = np.random.default_rng(seed)
    candidates: dict[int, float] = {}
    best_k, best_centroids = 1, z.mean(axis=0, keepdims=True)
    distinct = len(np.unique(z[: min(n, 10_000)], axis=0))
    if n < 10 or distinct < 3:
        return best_k, best_centroids, candidates
    sample = z[rng.choice(n, min(n, SAMPLE_FIT), replace=False)]
    for k in K_RANGE:
        if k >= min(len(sample), distinct):
            break
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit(sample)
        if len(np.unique(model.labels_)) < 2:
            continue
        score = float(silhouette_score(sample, model.labels_, sample_size=min(len(sample), SAMPLE_SILHOUETTE),
                                       random_state=seed))
        candidates[k] = round(score, 4)
        if best_k == 1 or score > candidates[best_k]:
            best_k, best_centroids = k, model.cluster_centers_
    return best_k, best_centroids, candidates


def _stable_labels(centroids: np.ndarray, scaler: StandardScaler, previous: dict[int, list[float]]) -> np.ndarray:
    """New centroid index → stable label: the matched previous label, else a fresh one."""
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
