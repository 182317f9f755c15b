"""Coreset on raw pixels: the paper's "Coreset" baseline (Sec. 4; Sener and Savarese 2018),
K-Center Greedy on the flattened preprocessed slices."""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy
from .kcenter import kcenter_greedy
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["CoresetStrategy"]


@register_strategy("coreset")
class CoresetStrategy(Strategy):
    """K-Center Greedy on ``context.images()`` flattened to (N, C*H*W), labelled slices as
    the initial centres.

    Args:
        progress: show a progress bar over the picks.
        memory_limit: bytes K-Center Greedy may allocate (default: the free memory).
    """

    def __init__(self, progress: bool = False, memory_limit: int | None = None) -> None:
        self.progress, self.memory_limit = bool(progress), memory_limit

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        images = context.images()
        return kcenter_greedy(
            images.reshape(len(images), -1),
            context.labelled_indices,
            budget,
            seed=self.seed_for(context, "kcenter"),
            device=resolve_device(context.device),
            progress=self.progress,
            memory_limit=self.memory_limit,
        )
