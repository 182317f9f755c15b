"""Budget schedules: cumulative fractions of the training pool labelled after each round.

Slices added in a round = ``int(N x fraction) - |labelled|`` (REFERENCE.md "Budgets").
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError

__all__ = []

DEFAULT_BUDGETS = (0.02, 0.03, 0.04, 0.05, 0.10, 0.15, 0.20, 0.40)
DAVIS_BUDGETS = (0.10, 0.20, 0.30, 0.40)
PRETRAINED_BUDGETS = (0.01, 0.02, 0.03, 0.04, 0.05)


def check_budgets(budgets: Sequence[float], pool_size: int | None = None, key: str = "budgets") -> list[float]:
    """Validate a cumulative budget schedule and return it as floats.

    Raises:
        ConfigError: naming ``key``, when the schedule is empty, not strictly increasing,
            outside (0, 1], or (given ``pool_size``) asks for a round of no new slice.
    """
    try:
        values = [float(b) for b in budgets]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}={budgets!r}: expected a list of fractions such as [0.02, 0.05, 0.1]") from err
    if not values:
        raise ConfigError(f"{key} is empty; expected cumulative fractions such as [0.02, 0.05, 0.1]")
    for value in values:
        if not 0.0 < value <= 1.0:
            raise ConfigError(
                f"{key}: {value} is outside (0, 1]; budgets are fractions of the training pool (0.4 = 40 %)"
            )
    for before, after in zip(values, values[1:]):
        if after <= before:
            raise ConfigError(
                f"{key}: {after} does not increase on {before}; the schedule is cumulative and must increase"
            )
    if pool_size is not None:
        round_sizes(values, pool_size, key)
    return values


def round_sizes(budgets: Sequence[float], pool_size: int, key: str = "budgets") -> list[int]:
    """Slices to add in each round for a pool of ``pool_size`` slices.

    Raises:
        ConfigError: when a round would add no slice (the pool is too small for that step
            of the schedule).
    """
    sizes, labelled = [], 0
    for fraction in budgets:
        target = int(pool_size * fraction)
        added = target - labelled
        if added <= 0:
            raise ConfigError(
                f"{key}: {fraction:g} of the {pool_size}-slice training pool is {target} slices, "
                f"no more than the {labelled} already labelled; use a coarser schedule or a larger pool"
            )
        sizes.append(added)
        labelled = target
    return sizes
