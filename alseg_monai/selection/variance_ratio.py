"""Variance Ratio over the round's ensemble (Beluch et al. 2018): the paper's "Variance
Ratio" baseline (Sec. 4)."""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError
from .base import SelectionContext, Strategy, positive_int, random_rows, top_rows
from .inference import ensemble_variance_ratio
from .registry import register_strategy
from .resources import resolve_device

__all__ = ["VarianceRatioStrategy"]

logger = logging.getLogger(__name__)


@register_strategy("variance_ratio")
class VarianceRatioStrategy(Strategy):
    """Top-``budget`` unlabelled slices by variation ratio (mean over pixels of
    1 - modal votes / M) of the previous round's M networks; a random round when no
    network exists yet.

    Args:
        num_models: M, the ensemble size used (paper: 5, the models trained per round).
        batch_size: slices per forward pass.

    Raises:
        ConfigError (at selection): fewer than 2 networks, so every score would be 0.
    """

    # The AL loop checks ``models_per_round`` against this before any training.
    min_models = 2

    def __init__(self, num_models: int = 5, batch_size: int = 16) -> None:
        self.num_models = positive_int(num_models, "variance_ratio.num_models", minimum=2)
        self.batch_size = positive_int(batch_size, "variance_ratio.batch_size")

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        models = context.models()
        if not models:
            return random_rows(context, budget, self.rng(context, "first_round"))
        if len(models) < 2:
            raise ConfigError(
                f"variance_ratio: needs an ensemble of >= 2 networks from the previous round, got {len(models)}; "
                "train more models per round"
            )
        if len(models) < self.num_models:
            logger.warning(
                "variance_ratio: %d networks available, fewer than num_models=%d", len(models), self.num_models
            )
        rows = context.unlabelled_indices
        scores = ensemble_variance_ratio(
            models[: self.num_models], context.images(), rows, self.batch_size, resolve_device(context.device)
        )
        return top_rows(rows, scores, budget)
