"""The paper's method (Sec. 3.2.2): K-Center Greedy on the group-contrastive (GCL)
embeddings, and its ablation on an encoder trained with NT-Xent only (paper Table 4).

The paper measures d(x1, x2) = ||g(x1) - g(x2)||_2 on the raw 512-d features from a
random first slice: ``geometry="euclidean", first_centre="random"`` keeps that exact
variant. The defaults are the ones the study's evidence supports (docs/study.md):
see :mod:`alseg_monai.selection.geometry` for the options.
"""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy, non_negative_float
from .features import EMBEDDING_KINDS, choice
from .geometry import FEATURE_GEOMETRIES, FIRST_CENTRES, feature_geometry, kmeanspp_rows, medoid_row
from .kcenter import kcenter_greedy
from .outliers import dense_candidates
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["GCLCoresetStrategy", "NTXentCoresetStrategy"]


def fuse_pixels(embeddings: np.ndarray, images: np.ndarray, pixel_weight: float) -> np.ndarray:
    """(N, D) embeddings and (N, C, H, W) slices -> (N, D + C*H*W) ``[g(x), w * x]`` float32.

    The variant of the authors' code, which also measured raw pixels; the distance
    becomes sqrt(||g1 - g2||^2 + w^2 ||x1 - x2||^2).
    """
    flat = images.reshape(len(images), -1)
    return np.concatenate([embeddings, np.float32(pixel_weight) * flat], axis=1, dtype=np.float32)


@register_strategy("gcl_coreset")
class GCLCoresetStrategy(Strategy):
    """K-Center Greedy on the embeddings of ``context.embeddings()``, labelled slices as
    the initial centres.

    The strategy names what it needs and the experiment provides it: ``encoder`` (which
    trained encoder, a key of the experiment's ``encoders``) and ``embedding`` (backbone
    features or projections).

    Args:
        geometry: ``euclidean`` (raw, the paper's), ``cosine`` (unit-length rows) or
            ``standardized`` (per-dimension z-scores); see :mod:`.geometry`.
        first_centre: with no labelled slice: ``random`` (the paper's), ``medoid``, or
            ``kmeans++`` (the first selection drawn by k-means++ seeding).
        embedding: ``backbone`` (512-d g(x), the paper's) or ``projection`` (64-d head output).
        encoder: the experiment's encoder these embeddings come from.
        pixel_weight: weight w of raw pixels concatenated to the (geometry-mapped)
            embeddings (the authors' code's fusion); 0 keeps the pure embedding metric.
        outliers: fraction of the pool, the sparsest by mean distance to their 10 nearest
            slices, that is never a centre nor counted in the radius (robust K-Center,
            :mod:`.outliers`); 0 is the plain K-Center Greedy.
        progress: show a progress bar over the picks.
        memory_limit: bytes K-Center Greedy may allocate (default: the free memory).

    Raises:
        ConfigError: an unknown geometry, first centre or embedding kind, a negative pixel
            weight, or ``outliers`` outside [0, 1).
    """

    default_encoder = "gcl"

    def __init__(
        self,
        geometry: str = "cosine",
        first_centre: str = "random",
        embedding: str = "backbone",
        encoder: str | None = None,
        pixel_weight: float = 0.0,
        outliers: float = 0.0,
        progress: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        self.geometry = choice(geometry, FEATURE_GEOMETRIES, f"{self.name}.geometry")
        self.first_centre = choice(first_centre, FIRST_CENTRES, f"{self.name}.first_centre")
        self.embedding = choice(embedding, EMBEDDING_KINDS, f"{self.name}.embedding")
        self.encoder = self.default_encoder if encoder is None else str(encoder)
        self.pixel_weight = non_negative_float(pixel_weight, f"{self.name}.pixel_weight")
        self.outliers = non_negative_float(outliers, f"{self.name}.outliers", below=1.0)
        self.progress, self.memory_limit = bool(progress), memory_limit

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        features = feature_geometry(context.embeddings(), self.geometry)
        if self.pixel_weight > 0:
            features = fuse_pixels(features, context.images(), self.pixel_weight)
        rows = np.arange(len(features))
        if self.outliers > 0:
            # K-Center on the dense rows only; picks map back to pool rows.
            rows = np.flatnonzero(dense_candidates(features, context.labelled_indices, budget, self.outliers))
            features = features[rows]
        labelled = np.flatnonzero(np.isin(rows, context.labelled_indices))
        first = np.zeros(0, dtype=np.int64)
        if labelled.size == 0 and self.first_centre == "kmeans++":
            return rows[kmeanspp_rows(features, budget, seed=self.seed_for(context, "kmeans++"))]
        if labelled.size == 0 and self.first_centre == "medoid":
            first = np.array([medoid_row(features, seed=self.seed_for(context, "medoid"))], dtype=np.int64)
            labelled, budget = first, budget - 1
        picks = kcenter_greedy(
            features,
            labelled,
            budget,
            seed=self.seed_for(context, "kcenter"),
            device=resolve_device(context.device),
            progress=self.progress,
            memory_limit=self.memory_limit,
        )
        return rows[np.concatenate([first, picks])]


@register_strategy("ntxent_coreset")
class NTXentCoresetStrategy(GCLCoresetStrategy):
    """The paper's ablation (Table 4): the same K-Center Greedy on an encoder trained
    with NT-Xent only (no group losses); the experiment's ``ntxent`` encoder by default."""

    default_encoder = "ntxent"
