"""Bootstrap error bars of the paper's appendix D.

"We generate 1000 bootstraps. For each bootstrap, we generate a resampling with
replacement of the test set volumes and generate the mean of the test set metrics
(average 3D Dice score over the test set) over the different experiment runs ... We
then calculate the sample standard deviation of the bootstrapped means and multiply
by two." For CHAOS and DAVIS, with few volumes, slices are resampled instead.

One resample draws the same items for every AL repeat (the test set is shared), so
the mean over repeats of the mean over drawn items equals the mean over drawn items
of the per-item mean over repeats; that identity keeps memory at (n, items).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["bootstrap_error"]

UNITS = ("volume", "slice")
_CHUNK = 256


def _as_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None]
    if scores.ndim != 2 or scores.shape[1] == 0 or scores.shape[0] == 0:
        raise DataError(f"scores: expected (repeats, items) or (items,) with at least one item, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise DataError("scores: contains NaN or infinite values; pass finite per-volume (or per-slice) scores")
    return scores


def bootstrap_means(scores: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """The ``n`` bootstrapped means: resample items (axis 1) with replacement, mean over
    them, then over repeats (axis 0). Returns an (n,) array.

    The k-th resample uses the k-th row of
    ``np.random.default_rng(seed).integers(0, items, size=(n, items))``.
    """
    scores = _as_scores(scores)
    if int(n) < 2:
        raise ConfigError(f"n: expected at least 2 bootstrap resamples, got {n}")
    per_item = scores.mean(axis=0)
    rng = np.random.default_rng(seed)
    items = per_item.shape[0]
    means = []
    for start in range(0, int(n), _CHUNK):
        draws = rng.integers(0, items, size=(min(_CHUNK, int(n) - start), items))
        means.append(per_item[draws].mean(axis=1))
    return np.concatenate(means)


def bootstrap_error(scores: np.ndarray, n: int = 1000, seed: int = 0, unit: str = "volume") -> float:
    """Twice the standard deviation of bootstrapped means (paper appendix D).

    Args:
        scores: (repeats, items) test scores of each AL repeat, or (items,) for one
            repeat; items are volumes (``unit="volume"``) or slices (``unit="slice"``,
            the paper's choice for CHAOS and DAVIS).
        n: number of bootstrap resamples (paper 1000).
        seed: seed of the resampling.
        unit: ``"volume"`` or ``"slice"``, what axis 1 holds; both resample that axis.

    Returns:
        2 x the sample standard deviation (ddof=1) of the bootstrapped means.

    Raises:
        ConfigError: an unknown unit or n < 2.
        DataError: empty or non-finite scores.
    """
    if unit not in UNITS:
        raise ConfigError(f"unit: expected one of {UNITS}, got {unit!r}")
    return float(2.0 * np.std(bootstrap_means(scores, n=n, seed=seed), ddof=1))
