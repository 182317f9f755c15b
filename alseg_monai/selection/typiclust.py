"""TypiClust (Hacohen, Dekel and Weinshall, "Active Learning on a Budget: Opposite
Strategies Suit High and Low Budgets", ICML 2022): the paper's "TypiClust" baseline.

k-means (faiss) on self-supervised embeddings with k = min(|L| + B, 500); clusters of
at most 5 slices are dropped; each pick visits the cluster with the fewest labelled
slices (then the largest) and takes its most typical unlabelled slice, typicality =
1 / mean Euclidean distance to its min(20, n / 2) nearest unlabelled neighbours in the
cluster (faiss kNN inside the cluster: never an N x N matrix). As in the paper's
definitions, typicality uses Euclidean distances (the published code averages squared
ones) and the cluster order is updated after every pick (the published code cycles
through one order fixed at the start); picked slices leave their cluster's kNN set.

Which features: the strategy's ``features`` (``embeddings`` of the experiment's
``encoder``, the GCL one by default, or ``pixels``) in its ``geometry``, ``cosine`` by
default as in the published code, which L2-normalises the self-supervised features
before clustering (:mod:`.features`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..utils.threads import thread_limit
from .base import SelectionContext, Strategy, positive_int
from .features import feature_knobs, pool_features
from .registry import register_strategy
from .resources import ensure_memory

__all__ = ["TypiClustStrategy", "kmeans_labels"]

logger = logging.getLogger(__name__)

# Threads of a run (None: pools left alone). Single-threaded like K-Center Greedy (issue 14): the
# per-pick faiss kNN and numpy calls are small and stall when another process takes a core.
_THREADS: int | None = 1


def kmeans_labels(features: np.ndarray, num_clusters: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Cluster id of each row of (N, D) ``features`` by faiss k-means: (N,) int64."""
    import faiss

    features = np.ascontiguousarray(features, dtype=np.float32)
    clustering = faiss.Clustering(features.shape[1], int(num_clusters))
    clustering.niter, clustering.seed, clustering.verbose = int(iterations), int(seed), False
    # min_points_per_centroid=1 only silences faiss's warning on small pools.
    clustering.min_points_per_centroid = 1
    centroids = faiss.IndexFlatL2(features.shape[1])
    # faiss.Kmeans.train would read the centroids back through a SWIG std::vector
    # proxy, which SimpleITK's SWIG module hijacks once both are imported (faiss
    # issue 3689); the trained index holds the centroids, so ask it directly.
    clustering.train(features, centroids)
    _, labels = centroids.search(features, 1)
    return labels[:, 0].astype(np.int64)


def most_typical(features: np.ndarray, num_neighbors: int = 20) -> int:
    """Row of (n, D) ``features`` with the highest typicality (first on ties).

    Typicality = 1 / mean distance to the min(num_neighbors, n // 2) nearest other rows.
    """
    import faiss

    n = len(features)
    k = min(num_neighbors, n // 2)
    if k == 0:
        return 0
    features = np.ascontiguousarray(features, dtype=np.float32)
    index = faiss.IndexFlatL2(features.shape[1])
    index.add(features)
    squared, _ = index.search(features, k + 1)
    # Column 0 is the point itself (or an exact duplicate, also at distance 0).
    mean_distance = np.sqrt(np.maximum(squared[:, 1:], 0.0)).mean(1)
    return int(np.argmin(mean_distance))


def typiclust_select(
    features: np.ndarray,
    labelled: Sequence[int] | np.ndarray,
    budget: int,
    seed: int = 0,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
    num_neighbors: int = 20,
    kmeans_iterations: int = 25,
) -> np.ndarray:
    """TypiClust picks on (N, D) ``features``: (budget,) int64 unlabelled rows in pick order.

    Args:
        features: (N, D) self-supervised embeddings of the whole pool.
        labelled: rows already labelled.
        budget: rows to pick (<= N - |labelled|).
        seed: k-means seed.
        max_clusters: cap on k (published: 500).
        min_cluster_size: clusters with at most this many slices are not visited (published: 5)
            while larger ones have unlabelled slices left.
        num_neighbors: neighbours of the typicality (published: 20).
        kmeans_iterations: k-means iterations (faiss's default).
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ConfigError(f"typiclust: features must be (N, D), got shape {features.shape}")
    n = len(features)
    labelled = np.asarray(labelled, dtype=np.int64)
    copy = 0 if features.dtype == np.float32 and features.flags.c_contiguous else features.size * 4
    ensure_memory(n * 64 + copy, f"typiclust on {n} x {features.shape[1]} features")
    k = max(1, min(len(labelled) + budget, max_clusters, n))
    with thread_limit(_THREADS):
        return _typiclust_picks(features, labelled, budget, k, seed, min_cluster_size, num_neighbors, kmeans_iterations)


def _typiclust_picks(features: np.ndarray, labelled: np.ndarray, budget: int, k: int, seed: int,
                     min_cluster_size: int, num_neighbors: int, kmeans_iterations: int) -> np.ndarray:
    n = len(features)
    labels = kmeans_labels(features, k, kmeans_iterations, seed)
    sizes = np.bincount(labels, minlength=k)
    taken = np.bincount(labels[labelled], minlength=k)
    available = np.ones(n, dtype=bool)
    available[labelled] = False
    left = np.bincount(labels[available], minlength=k)
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(sizes)[:-1])
    picks = np.empty(budget, dtype=np.int64)
    for step in range(budget):
        eligible = (left > 0) & (sizes > min_cluster_size)
        if not eligible.any():
            # Only small clusters still hold unlabelled slices: visit those too.
            eligible = left > 0
        # Fewest labelled first, then largest, then lowest id.
        candidates = np.flatnonzero(eligible)
        cluster = candidates[np.lexsort((candidates, -sizes[candidates], taken[candidates]))[0]]
        rows = members[cluster][available[members[cluster]]]
        row = rows[most_typical(features[rows], num_neighbors)]
        picks[step] = row
        available[row] = False
        taken[cluster] += 1
        left[cluster] -= 1
    logger.info("typiclust: %d clusters, %d picks", k, budget)
    return picks


@register_strategy("typiclust")
class TypiClustStrategy(Strategy):
    """TypiClust on the pool's features (by default the GCL embeddings, cosine geometry).

    Args: ``max_clusters`` (500), ``min_cluster_size`` (5), ``num_neighbors`` (20),
    ``kmeans_iterations`` (25), as in :func:`typiclust_select`; ``features``
    (``embeddings`` or ``pixels``), ``encoder`` (the experiment's encoder of the
    embeddings, ``gcl`` when not given), ``embedding`` (``backbone`` or ``projection``)
    and ``geometry`` (``cosine``, ``euclidean`` or ``standardized``), see :mod:`.features`.
    """

    def __init__(
        self,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        num_neighbors: int = 20,
        kmeans_iterations: int = 25,
        features: str = "embeddings",
        encoder: str | None = None,
        embedding: str = "backbone",
        geometry: str = "cosine",
    ) -> None:
        self.max_clusters = positive_int(max_clusters, "typiclust.max_clusters")
        self.min_cluster_size = positive_int(min_cluster_size, "typiclust.min_cluster_size", minimum=0)
        self.num_neighbors = positive_int(num_neighbors, "typiclust.num_neighbors")
        self.kmeans_iterations = positive_int(kmeans_iterations, "typiclust.kmeans_iterations")
        self.features, self.encoder, self.embedding, self.geometry = feature_knobs(
            "typiclust", features, encoder, embedding, geometry)

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        return typiclust_select(
            pool_features(context, self.features, self.geometry),
            context.labelled_indices,
            budget,
            seed=self.seed_for(context, "kmeans"),
            max_clusters=self.max_clusters,
            min_cluster_size=self.min_cluster_size,
            num_neighbors=self.num_neighbors,
            kmeans_iterations=self.kmeans_iterations,
        )
