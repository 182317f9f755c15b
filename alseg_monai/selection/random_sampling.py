"""Random selection: the paper's "Random" baseline (Sec. 4)."""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy, random_rows
from .registry import register_strategy

__all__ = ["RandomStrategy"]


@register_strategy("random")
class RandomStrategy(Strategy):
    """``budget`` slices drawn uniformly from the unlabelled pool, seeded by the experiment
    seed and the round."""

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        return random_rows(context, budget, self.rng(context))
