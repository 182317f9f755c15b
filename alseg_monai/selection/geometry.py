"""The geometry K-Center Greedy measures embeddings in, and where its first centre lies.

The paper (Sec. 3.2.2) runs K-Center Greedy on the raw Euclidean distance between
encoder features, d(x1, x2) = ||g(x1) - g(x2)||_2, from a random first slice. Trained
with a cosine-similarity loss (Eq. 4), the encoder leaves the feature *norm*
unconstrained: on the phantom, three epochs spread the norms of g(x) over 16-146, the
norm tracked apical position, and farthest-first picking chased large-norm outliers
(issue "The method's claim"). The options here let a study compare geometries:

- ``euclidean``: the raw features (the paper's metric);
- ``cosine``: rows scaled to unit length, so the Euclidean distance is
  sqrt(2 - 2 cos) and orders pairs as the loss's cosine similarity does;
- ``standardized``: every dimension centred and scaled to unit variance over the pool.

and first centres (used only when nothing is labelled yet):

- ``random``: a uniformly drawn slice (Sener and Savarese 2018; the paper);
- ``medoid``: the slice with the least summed distance to the pool (deterministic);
- ``kmeans++``: the whole first selection drawn by k-means++ seeding (Arthur and
  Vassilvitskii 2007): a uniform first slice, then each next one with probability
  proportional to its squared distance to the nearest pick, which spreads the picks
  like farthest-first but prefers dense regions over lone outliers.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from ..utils import derive_seed

__all__ = ["feature_geometry"]

FEATURE_GEOMETRIES = ("euclidean", "cosine", "standardized")
FIRST_CENTRES = ("random", "medoid", "kmeans++")
# The medoid is exact up to this many candidates; above it, the best of a seeded sample.
_MEDOID_CANDIDATES = 4096
_ROWS_PER_BLOCK = 1024


def _check_matrix(features: np.ndarray, who: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise DataError(f"{who}: expected (N, D) features with N >= 1, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise DataError(f"{who}: features contain NaN or infinity")
    return features


def feature_geometry(features: np.ndarray, geometry: str) -> np.ndarray:
    """(N, D) features mapped into ``geometry`` (see the module docstring): (N, D) float32.

    Raises:
        ConfigError: an unknown geometry.
        DataError: not a non-empty 2-D finite array.
    """
    if geometry not in FEATURE_GEOMETRIES:
        raise ConfigError(f"geometry: expected one of {list(FEATURE_GEOMETRIES)}, got {geometry!r}")
    features = _check_matrix(features, "feature_geometry")
    if geometry == "euclidean":
        return features
    x = features.astype(np.float64)
    if geometry == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        # An all-zero row has no direction; it stays at the origin.
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    else:
        spread = x.std(axis=0)
        # A constant dimension carries no information: centred, it is zero everywhere.
        x = np.divide(x - x.mean(axis=0), spread, out=np.zeros_like(x), where=spread > 0)
    return np.ascontiguousarray(x, dtype=np.float32)


def _distances_to(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), N) Euclidean distances from ``x[rows]`` to every row of ``x``, in float64."""
    centres = x[rows].astype(np.float64)
    squared = (centres**2).sum(1)[:, None] + (x.astype(np.float64) ** 2).sum(1)[None, :] - 2.0 * centres @ x.T
    return np.sqrt(np.maximum(squared, 0.0))


def medoid_row(features: np.ndarray, seed: int = 0) -> int:
    """Row of the medoid of ``features``: least summed Euclidean distance to all rows.

    Exact for N <= 4,096; above, the best of 4,096 candidate rows drawn with ``seed``
    (each still scored against all N rows). O(min(N, 4096) x N x D) time, blocked memory.
    """
    x = _check_matrix(features, "medoid_row")
    n = x.shape[0]
    if n <= _MEDOID_CANDIDATES:
        candidates = np.arange(n)
    else:
        rng = np.random.default_rng(derive_seed(seed, "medoid"))
        candidates = np.sort(rng.choice(n, _MEDOID_CANDIDATES, replace=False))
    totals = np.concatenate([
        _distances_to(x, candidates[start:start + _ROWS_PER_BLOCK]).sum(1)
        for start in range(0, candidates.size, _ROWS_PER_BLOCK)
    ])
    return int(candidates[int(np.argmin(totals))])


def kmeanspp_rows(features: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct rows by k-means++ seeding: (count,) int64, in draw order.

    The first row is uniform; each next one is drawn with probability proportional to
    its squared distance to the nearest row drawn so far (rows already drawn have
    probability 0). When every remaining row coincides with a drawn one, the rest are
    drawn uniformly among the undrawn rows.

    Raises:
        ConfigError: ``count`` outside [0, N].
    """
    x = _check_matrix(features, "kmeanspp_rows")
    n = x.shape[0]
    if isinstance(count, bool) or not 0 <= int(count) <= n:
        raise ConfigError(f"kmeanspp_rows: count must be in [0, {n}], got {count!r}")
    rng = np.random.default_rng(derive_seed(seed, "kmeans++"))
    picks = np.empty(int(count), dtype=np.int64)
    nearest = np.full(n, np.inf)
    taken = np.zeros(n, dtype=bool)
    for step in range(int(count)):
        weights = np.where(taken, 0.0, np.square(nearest) if step else 1.0)
        total = weights.sum()
        if not total > 0:
            weights, total = (~taken).astype(np.float64), float((~taken).sum())
        row = int(rng.choice(n, p=weights / total))
        picks[step], taken[row] = row, True
        nearest = np.minimum(nearest, _distances_to(x, np.array([row]))[0])
    return picks
