"""Score a trained network on whole volumes: the test score of an AL round.

Each volume of a ``VolumeDataset`` is predicted (slice by slice for 2D networks),
resized back to its stored size, and scored per foreground class with
:func:`~alseg_monai.evaluation.dice.volume_dice`; the round's score is the mean over
classes, then over volumes (paper Section 3.2.2). Per-volume, per-class results can
be written as CSV and the predictions as NIfTI with the source affine.

Distributed (``torchrun``): each rank scores a contiguous share of the volumes and every
rank gets the whole table; rank 0 writes the CSV, each rank the predictions of its share.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import DataError
from ..utils import atomic_write_text, gather_rows, main_process_only, shard_indices
from .dice import mean_over_classes, volume_dice
from .inference import predict, save_prediction_nifti

__all__ = ["evaluate_volumes"]

_REQUIRED_KEYS = ("image", "label_original", "spatial_shape", "id")


@dataclass
class VolumeEvaluation:
    """Dice of every evaluated volume.

    Attributes:
        ids: volume ids, in dataset order.
        patients: the patient of each volume.
        scores: (V, K - 1) per-volume, per-foreground-class Dice.
        convention: the empty-class convention used (``paper`` / ``monai``).
    """

    ids: list[str]
    patients: list[str]
    scores: np.ndarray
    convention: str

    @property
    def per_volume(self) -> np.ndarray:
        """(V,) mean over classes of each volume."""
        return mean_over_classes(self.scores)

    @property
    def per_class(self) -> np.ndarray:
        """(K - 1,) mean over volumes of each class (NaN ignored)."""
        return np.array([np.nanmean(col) if np.any(~np.isnan(col)) else np.nan for col in self.scores.T])

    @property
    def mean_dice(self) -> float:
        """Mean over classes, then over volumes: the round's test score."""
        per_volume = self.per_volume
        return float(np.nanmean(per_volume)) if np.any(~np.isnan(per_volume)) else float("nan")


@main_process_only
def write_dice_csv(result: VolumeEvaluation, path: str | os.PathLike) -> None:
    """Write ``id, patient, class_1 .. class_{K-1}, mean`` rows, one per volume, atomically
    (on rank 0 only in a distributed run)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "patient", *(f"class_{c}" for c in range(1, result.scores.shape[1] + 1)), "mean"])
    for vid, patient, row, mean in zip(result.ids, result.patients, result.scores, result.per_volume):
        writer.writerow([vid, patient, *(f"{v:.6f}" for v in row), f"{mean:.6f}"])
    atomic_write_text(path, buffer.getvalue())


def evaluate_volumes(
    model: nn.Module,
    volume_dataset: Sequence[dict],
    num_classes: int,
    convention: str = "paper",
    csv_path: str | os.PathLike | None = None,
    prediction_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
) -> VolumeEvaluation:
    """3D Dice of ``model`` on every volume of ``volume_dataset``.

    Args:
        model: a 2D segmentation network (or a 3D one with ``spatial_dims = 3``).
        volume_dataset: items with ``image`` (C, S, S, D), ``label_original`` (H, W, D),
            ``spatial_shape`` (H, W), ``id``, and optionally ``patient`` and ``affine``
            (the ``VolumeDataset`` contract of docs/design.md).
        num_classes: K, background included.
        convention: empty-class convention of :func:`volume_dice`.
        csv_path: where to write per-volume, per-class Dice (None: not written).
        prediction_dir: where to write ``<id>.nii.gz`` predictions with the source
            affine (None: not written; needs ``affine`` in the items).
        batch_size: slices per forward pass.

    Returns:
        :class:`VolumeEvaluation`; ``.mean_dice`` is the round's score. Distributed, every
        rank returns the whole evaluation (each scored its share of the volumes).

    Raises:
        DataError: an empty dataset or items missing the keys above.
    """
    if len(volume_dataset) == 0:
        raise DataError("volume_dataset: no volume to evaluate")
    share = shard_indices(len(volume_dataset))
    ids, patients, rows = [], [], []
    for index in share.tolist():
        item = volume_dataset[index]
        missing = [k for k in _REQUIRED_KEYS if k not in item]
        if missing:
            raise DataError(f"volume_dataset[{index}]: missing keys {missing}; expected {list(_REQUIRED_KEYS)}")
        pred = predict(model, item["image"], item["spatial_shape"], batch_size=batch_size)
        rows.append(volume_dice(pred, item["label_original"], num_classes, convention=convention))
        ids.append(str(item["id"]))
        patients.append(str(item.get("patient", "")))
        if prediction_dir is not None:
            if "affine" not in item:
                raise DataError(f"volume_dataset[{index}] ({item['id']}): no 'affine' to write the prediction with")
            save_prediction_nifti(pred, item["affine"], Path(prediction_dir) / f"{item['id']}.nii.gz")
    # A rank with no volume (fewer volumes than ranks) sends no row; the others give the width.
    scores = np.stack(rows) if rows else np.zeros((0, 0))
    total = len(volume_dataset)
    result = VolumeEvaluation(gather_rows(ids, share, total), gather_rows(patients, share, total),
                              gather_rows(scores, share, total), convention)
    if csv_path is not None:
        write_dice_csv(result, csv_path)
    return result
