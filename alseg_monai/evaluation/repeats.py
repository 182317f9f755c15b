"""Statistics over AL repeats: the mean with its confidence interval, and the paired
difference of two strategies.

A strategy is better only when it wins over repeats (ARCHITECTURE.md, "Judging a
strategy"). Repeat r of every strategy shares its training seeds and split, so the
per-repeat difference ``dice(strategy, r) - dice(reference, r)`` removes much of the
training noise the two have in common; its mean and Student-t interval say whether
the strategy beats the reference at a budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import ConfigError, DataError

__all__ = ["Interval", "mean_interval", "paired_difference"]


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values and its two-sided ``level`` Student-t confidence interval.

    With one value the interval is undefined: ``low`` and ``high`` are NaN.
    """

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely above or below 0."""
        return bool(self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``values`` with its Student-t ``level`` interval (sample SD, n - 1 degrees of freedom).

    Raises:
        ConfigError: ``level`` outside (0, 1).
        DataError: no values, or a non-finite one.
    """
    if not 0 < level < 1:
        raise ConfigError(f"level: expected a confidence level in (0, 1), got {level}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise DataError(f"mean_interval: expected at least one finite value, got {list(x)}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, float("nan"), float("nan"), 1, level)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size), level)


def paired_difference(values: dict[int, float], reference: dict[int, float], level: float = 0.95) -> Interval:
    """Mean and interval of ``values[r] - reference[r]`` over the repeats ``r`` both have.

    Args:
        values: repeat -> score of the strategy.
        reference: repeat -> score of the reference strategy (e.g. Random).

    Raises:
        DataError: the two share no repeat.
    """
    shared = sorted(set(values) & set(reference))
    if not shared:
        raise DataError(f"paired_difference: no repeat in common (repeats {sorted(values)} vs {sorted(reference)})")
    return mean_interval([values[r] - reference[r] for r in shared], level)
