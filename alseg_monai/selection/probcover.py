"""ProbCover (Yehuda, Dekel, Hacohen and Weinshall, "Active Learning Through a Covering
Lens", NeurIPS 2022): greedy maximum coverage of delta-balls, for low budgets.

Every pool slice x owns the ball B(x) = {y : ||f(x) - f(y)|| < delta} in feature space
(itself included). A labelled slice covers its ball. Each pick is the unlabelled slice
whose ball holds the most slices not covered yet (the greedy algorithm for maximum
coverage, its Algorithm 1), so picks are typical (dense) and apart from each other;
ties go to the lowest pool row. Once every slice is covered, no ball adds coverage and
the remaining picks are drawn uniformly among the unlabelled slices (our choice: the
paper's budgets end before full coverage).

delta by the paper's purity criterion (its Sec. 4.1): pseudo-labels from k-means, a ball
is pure when every slice in it has its centre's pseudo-label, and delta is the largest
radius at which at least ``alpha`` (0.95) of the balls are pure. A ball B(x) is pure
exactly while delta <= the distance from x to its nearest slice of another pseudo-label,
so that largest delta is an order statistic of those distances (:func:`purity_delta`),
exact rather than the grid search of the published code. The paper clusters into as
many groups as the dataset has classes; slices have no class, so the default is the
segmentation's class count (``purity_clusters``).

Features as for TypiClust (:mod:`.features`): the GCL embeddings in the cosine geometry
by default (the published code L2-normalises). The ball graph comes from exact faiss
range searches in row chunks; its size is checked against free memory as it grows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..utils.threads import thread_limit
from .base import SelectionContext, Strategy, non_negative_float, positive_int
from .features import feature_knobs, pool_features
from .registry import register_strategy
from .resources import ensure_memory
from .typiclust import kmeans_labels

__all__ = ["ProbCoverStrategy", "ball_graph", "probcover_select", "purity_delta"]

logger = logging.getLogger(__name__)

_QUERY_ROWS = 4096
# Nearest other-label rows by the float32 search that are re-measured in float64.
_EXACT_CANDIDATES = 4


def _matrix(features: np.ndarray, who: str) -> np.ndarray:
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise DataError(f"{who}: expected (N, D) features with N >= 1, got shape {features.shape}")
    return features


def purity_delta(features: np.ndarray, pseudo_labels: Sequence[int] | np.ndarray, alpha: float = 0.95) -> float:
    """Largest delta at which at least ``alpha`` of the balls B(x, delta) are pure.

    Args:
        features: (N, D) features.
        pseudo_labels: (N,) cluster id of each row (k-means in the paper).
        alpha: the purity threshold (paper: 0.95), in (0, 1].

    Returns:
        The ceil(alpha N)-th largest distance from a row to its nearest row of another
        pseudo-label (a ball of that radius excludes that row, the strict inequality).

    Raises:
        ConfigError: ``alpha`` outside (0, 1], or fewer than two distinct pseudo-labels.
        DataError: features and labels of different lengths.
    """
    import faiss

    x = _matrix(features, "purity_delta")
    labels = np.asarray(pseudo_labels).reshape(-1)
    if len(labels) != len(x):
        raise DataError(f"purity_delta: {len(labels)} pseudo-labels for {len(x)} feature rows")
    if isinstance(alpha, bool) or not 0 < float(alpha) <= 1:
        raise ConfigError(f"purity: expected a fraction in (0, 1], got {alpha!r}")
    groups = np.unique(labels)
    if groups.size < 2:
        raise ConfigError("purity_delta: every row has the same pseudo-label; purity needs two clusters or more")
    other = np.empty(len(x))
    with thread_limit(1):
        for group in groups:
            inside = np.flatnonzero(labels == group)
            outside = np.flatnonzero(labels != group)
            index = faiss.IndexFlatL2(x.shape[1])
            index.add(x[outside])
            # float32 search for candidates, their distances re-measured in float64, so
            # that delta is the exact order statistic the docstring states.
            _, found = index.search(x[inside], min(_EXACT_CANDIDATES, outside.size))
            gaps = x[outside[found]].astype(np.float64) - x[inside, None].astype(np.float64)
            other[inside] = np.sqrt((gaps**2).sum(-1)).min(1)
    needed = int(np.ceil(float(alpha) * len(x)))
    return float(np.sort(other)[::-1][needed - 1])


def ball_graph(features: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The delta-balls of every row as CSR arrays ``(offsets, members)``: the rows within
    distance < ``delta`` of row i are ``members[offsets[i]:offsets[i + 1]]`` (i included).

    The relation is symmetric, so the same arrays list the balls that contain row i.
    """
    import faiss

    x = _matrix(features, "ball_graph")
    n = len(x)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    counts, members = [], []
    held = 0
    with thread_limit(1):
        for start in range(0, n, _QUERY_ROWS):
            lims, _, found = index.range_search(x[start:start + _QUERY_ROWS], float(delta) ** 2)
            held += found.nbytes
            ensure_memory(held, f"probcover's ball graph ({held // 8} edges so far, delta={delta:.4g})")
            counts.append(np.diff(lims))
            members.append(found.astype(np.int64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return offsets, np.concatenate(members)


def _balls_of(rows: np.ndarray, offsets: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Members of the balls of ``rows``, concatenated (with repeats)."""
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([members[offsets[r]:offsets[r + 1]] for r in rows])


def probcover_select(features: np.ndarray, labelled: Sequence[int] | np.ndarray, budget: int, delta: float,
                     seed: int = 0) -> np.ndarray:
    """ProbCover picks on (N, D) ``features``: (budget,) int64 unlabelled rows in pick order.

    Greedy maximum coverage of the balls of radius ``delta``, the balls of ``labelled``
    rows covered from the start; after full coverage, uniform picks drawn with ``seed``.
    """
    x = _matrix(features, "probcover")
    n = len(x)
    labelled = np.asarray(labelled, dtype=np.int64)
    offsets, members = ball_graph(x, delta)
    covered = np.zeros(n, dtype=bool)
    covered[_balls_of(labelled, offsets, members)] = True
    # degree[i]: uncovered rows in ball(i) = uncovered members of i's ball (symmetry).
    owner = np.repeat(np.arange(n), np.diff(offsets))
    degree = np.bincount(owner[~covered[members]], minlength=n)
    available = np.ones(n, dtype=bool)
    available[labelled] = False
    picks = np.empty(budget, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for step in range(budget):
        gains = np.where(available, degree, -1)
        row = int(np.argmax(gains))
        if gains[row] <= 0:
            rest = rng.choice(np.flatnonzero(available), size=budget - step, replace=False)
            picks[step:] = rest
            logger.info("probcover: full coverage after %d picks; %d drawn uniformly", step, budget - step)
            break
        picks[step], available[row] = row, False
        new = members[offsets[row]:offsets[row + 1]]
        new = new[~covered[new]]
        covered[new] = True
        np.subtract.at(degree, _balls_of(new, offsets, members), 1)
    logger.info("probcover: delta %.4g, coverage %.3f after %d picks", delta, covered.mean(), budget)
    return picks


@register_strategy("probcover")
class ProbCoverStrategy(Strategy):
    """ProbCover on the pool's features (by default the GCL embeddings, cosine geometry).

    Args:
        delta: ball radius; ``None`` chooses it each round by the purity criterion.
        purity: the purity threshold alpha (paper: 0.95).
        purity_clusters: k of the k-means pseudo-labels (``None``: the segmentation's
            class count, background included).
        kmeans_iterations: iterations of that k-means.
        features, encoder, embedding, geometry: the features, as for TypiClust (:mod:`.features`).

    Raises:
        ConfigError: a non-positive delta, a purity outside (0, 1], fewer than 2 clusters.
    """

    def __init__(
        self,
        delta: float | None = None,
        purity: float = 0.95,
        purity_clusters: int | None = None,
        kmeans_iterations: int = 25,
        features: str = "embeddings",
        encoder: str | None = None,
        embedding: str = "backbone",
        geometry: str = "cosine",
    ) -> None:
        self.delta = None if delta is None else non_negative_float(delta, "probcover.delta")
        if self.delta == 0:
            raise ConfigError("probcover.delta: expected a radius > 0 (or null to choose it by purity)")
        self.purity = non_negative_float(purity, "probcover.purity")
        if not 0 < self.purity <= 1:
            raise ConfigError(f"probcover.purity: expected a fraction in (0, 1], got {purity!r}")
        self.purity_clusters = None if purity_clusters is None else positive_int(
            purity_clusters, "probcover.purity_clusters", minimum=2)
        self.kmeans_iterations = positive_int(kmeans_iterations, "probcover.kmeans_iterations")
        self.features, self.encoder, self.embedding, self.geometry = feature_knobs(
            "probcover", features, encoder, embedding, geometry)

    def radius(self, context: SelectionContext, features: np.ndarray) -> float:
        """This round's delta: the fixed one, or the purity criterion's on k-means pseudo-labels."""
        if self.delta is not None:
            return self.delta
        clusters = self.purity_clusters or max(2, int(context.num_classes or 2))
        labels = kmeans_labels(features, min(clusters, len(features)), self.kmeans_iterations,
                               self.seed_for(context, "kmeans"))
        return purity_delta(features, labels, self.purity)

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        features = pool_features(context, self.features, self.geometry)
        delta = self.radius(context, features)
        return probcover_select(features, context.labelled_indices, budget, delta,
                                seed=self.seed_for(context, "uniform"))
