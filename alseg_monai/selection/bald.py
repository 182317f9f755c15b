"""BALD with MC dropout (Gal et al. 2017): the paper's "BALD" baseline (Sec. 4)."""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy, positive_int, random_rows, top_rows
from .mc_dropout import mc_dropout_bald
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["BALDStrategy"]


@register_strategy("bald")
class BALDStrategy(Strategy):
    """Top-``budget`` unlabelled slices by BALD mutual information of T MC-dropout passes
    of the previous round's first network; a random round when no network exists yet.

    Args:
        num_samples: T stochastic passes (authors' runs: 40).
        batch_size: slices per forward pass.
    """

    def __init__(self, num_samples: int = 40, batch_size: int = 8) -> None:
        self.num_samples = positive_int(num_samples, "bald.num_samples", minimum=2)
        self.batch_size = positive_int(batch_size, "bald.batch_size")

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        models = context.models()
        if not models:
            return random_rows(context, budget, self.rng(context, "first_round"))
        rows = context.unlabelled_indices
        scores = mc_dropout_bald(
            models[0],
            context.images(),
            rows,
            num_samples=self.num_samples,
            batch_size=self.batch_size,
            device=resolve_device(context.device),
            seed=self.seed_for(context, "mc_dropout"),
        )
        return top_rows(rows, scores, budget)
