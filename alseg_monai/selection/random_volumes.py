"""The paper's volume-based baseline (Fig. 2): annotate whole volumes, chosen at random."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .base import SelectionContext, Strategy
from .registry import register_strategy

__all__ = ["RandomVolumesStrategy"]


@register_strategy("random_volumes")
class RandomVolumesStrategy(Strategy):
    """Random unlabelled volumes, whole, until at least ``budget`` slices are added.

    Its answers may exceed the budget by part of a volume (``unit = "volume"``); the
    round then trains a 3D network on the labelled volumes.
    """

    unit = "volume"

    def select(self, context: SelectionContext, budget: int) -> list[str]:
        """Ids of every slice of the drawn volumes, volume by volume."""
        if budget <= 0:
            return []
        rows = defaultdict(list)
        for row, record in enumerate(context.pool):
            rows[record["volume"]].append(row)
        free = [volume for volume, members in rows.items() if not context.labelled_mask[members].any()]
        added: list[str] = []
        for position in self.rng(context, "volumes").permutation(len(free)):
            if len(added) >= budget:
                break
            added.extend(context.ids[row] for row in rows[free[int(position)]])
        return added

    def select_rows(self, context: SelectionContext, budget: int) -> np.ndarray:
        return np.array([context.row_of[i] for i in self.select(context, budget)], dtype=np.int64)
