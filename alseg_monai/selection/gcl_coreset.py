"""The paper's method (Sec. 3.2.2): K-Center Greedy on the group-contrastive (GCL)
embeddings, d(x1, x2) = ||g(x1) - g(x2)||_2."""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy, non_negative_float
from .kcenter import kcenter_greedy
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["GCLCoresetStrategy", "fuse_pixels"]


def fuse_pixels(embeddings: np.ndarray, images: np.ndarray, pixel_weight: float) -> np.ndarray:
    """(N, D) embeddings and (N, C, H, W) slices -> (N, D + C*H*W) ``[g(x), w * x]`` float32.

    The variant of the authors' code, which also measured raw pixels; the distance
    becomes sqrt(||g1 - g2||^2 + w^2 ||x1 - x2||^2).
    """
    flat = images.reshape(len(images), -1)
    return np.concatenate([embeddings, np.float32(pixel_weight) * flat], axis=1, dtype=np.float32)


@register_strategy("gcl_coreset")
class GCLCoresetStrategy(Strategy):
    """K-Center Greedy on ``context.embeddings()`` (Euclidean), labelled slices as the
    initial centres.

    Args:
        pixel_weight: weight w of raw pixels concatenated to the embeddings (the authors'
            code's fusion); 0 (default) keeps the paper's pure embedding metric.
        progress: show a progress bar over the picks.
        memory_limit: bytes K-Center Greedy may allocate (default: the free memory).
    """

    def __init__(self, pixel_weight: float = 0.0, progress: bool = False, memory_limit: int | None = None) -> None:
        self.pixel_weight = non_negative_float(pixel_weight, "gcl_coreset.pixel_weight")
        self.progress, self.memory_limit = bool(progress), memory_limit

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        features = context.embeddings()
        if self.pixel_weight > 0:
            features = fuse_pixels(features, context.images(), self.pixel_weight)
        return kcenter_greedy(
            features,
            context.labeled_indices,
            budget,
            seed=self.seed_for(context, "kcenter"),
            device=resolve_device(context.device),
            progress=self.progress,
            memory_limit=self.memory_limit,
        )
