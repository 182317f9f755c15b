"""Stochastic Batches (Gaillochet et al., "Active learning for medical image segmentation
with stochastic batches", MedIA 2023): the paper's "Stochastic Batches" baseline."""

from __future__ import annotations

import numpy as np

from .base import SelectionContext, Strategy, positive_int, random_rows
from .inference import ensemble_entropy
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["StochasticBatchesStrategy"]


def best_group(groups: np.ndarray, scores: np.ndarray) -> int:
    """Index of the (G, B) row group whose slices have the highest mean score (first on ties)."""
    return int(np.argmax(scores.reshape(groups.shape).mean(1)))


@register_strategy("stochastic_batches")
class StochasticBatchesStrategy(Strategy):
    """Split the shuffled unlabelled pool into floor(U / budget) random groups of
    ``budget`` slices, score each group by the mean uncertainty of its slices (entropy of
    the ensemble-mean prediction of the previous round's networks) and take the best
    group; a random group when no network exists yet.

    Args:
        num_models: networks of the previous round averaged into the prediction (paper: 5).
        batch_size: slices per forward pass.
    """

    def __init__(self, num_models: int = 5, batch_size: int = 16) -> None:
        self.num_models = positive_int(num_models, "stochastic_batches.num_models")
        self.batch_size = positive_int(batch_size, "stochastic_batches.batch_size")

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        models = context.models()
        if not models:
            return random_rows(context, budget, self.rng(context, "first_round"))
        shuffled = self.rng(context, "groups").permutation(context.unlabelled_indices)
        num_groups = len(shuffled) // budget
        groups = shuffled[: num_groups * budget].reshape(num_groups, budget)
        scores = ensemble_entropy(
            models[: self.num_models], context.images(), groups.ravel(), self.batch_size, resolve_device(context.device)
        )
        return groups[best_group(groups, scores)]
