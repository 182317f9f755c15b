"""3D Dice of one predicted volume (paper Section 3.2.2: "We calculate the 3D DICE
score on each 3D volume and report the average on all the volumes in the test set").

Dice is computed per foreground class on the whole volume through MONAI's
:func:`~monai.metrics.compute_dice`. Two conventions for a class that is empty:

- ``"paper"`` (how the published numbers were computed): a class whose prediction
  is empty scores 0, even when the ground truth is empty too. Otherwise plain Dice,
  so a class absent from the truth but predicted also scores 0.
- ``"monai"``: a class absent from the ground truth is NaN and left out of means
  (MONAI's ``ignore_empty=True``).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import compute_dice

from ..errors import ConfigError, DataError

__all__ = ["mean_over_classes", "volume_dice"]

CONVENTIONS = ("paper", "monai")


def _as_label_volume(volume: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    volume = torch.as_tensor(volume)
    if volume.ndim != 3:
        raise DataError(f"{name}: expected an (H, W, D) class map, got shape {tuple(volume.shape)}")
    if volume.is_floating_point():
        raise DataError(f"{name}: expected integer class indices, got dtype {volume.dtype}")
    return volume.long()


def volume_dice(
    pred: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    num_classes: int,
    convention: str = "paper",
) -> np.ndarray:
    """Per-foreground-class Dice of one 3D volume.

    Args:
        pred: (H, W, D) integer predicted classes.
        label: (H, W, D) integer ground truth, same shape.
        num_classes: K, background (class 0) included.
        convention: ``"paper"`` or ``"monai"`` (see the module docstring).

    Returns:
        (K - 1,) float64 Dice of classes 1..K-1 (NaN only under ``"monai"``).

    Raises:
        ConfigError: an unknown convention or ``num_classes`` < 2.
        DataError: shapes that differ or are not 3D, float inputs, values outside 0..K-1.
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    if num_classes < 2:
        raise ConfigError(f"num_classes: expected >= 2 (background included), got {num_classes}")
    pred, label = _as_label_volume(pred, "pred"), _as_label_volume(label, "label")
    if pred.shape != label.shape:
        raise DataError(f"pred shape {tuple(pred.shape)} != label shape {tuple(label.shape)}")
    for name, volume in (("pred", pred), ("label", label)):
        if volume.numel() and (int(volume.min()) < 0 or int(volume.max()) >= num_classes):
            raise DataError(f"{name}: values must be class indices 0..{num_classes - 1}, "
                            f"got range [{int(volume.min())}, {int(volume.max())}]")
    scores = compute_dice(
        pred[None, None], label[None, None], include_background=False,
        ignore_empty=convention == "monai", num_classes=num_classes,
    )[0].double().numpy()
    if convention == "paper":
        present = np.array([bool((pred == c).any()) for c in range(1, num_classes)])
        scores = np.where(present, scores, 0.0)
    return scores


def mean_over_classes(scores: np.ndarray) -> np.ndarray:
    """Mean over the last (class) axis, ignoring NaN; NaN where every class is NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.sum(~np.isnan(scores), axis=-1)
    totals = np.nansum(scores, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
