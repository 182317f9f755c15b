"""3D Dice against hand-computed values under both conventions, and whole-dataset evaluation."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.evaluation import evaluate_volumes, volume_dice
from alseg_monai.evaluation.dice import mean_over_classes


def _case():
    """4 classes on a (4, 4, 2) volume:
    class 1: truth 4 voxels, prediction 2 of them -> 2*2/(4+2) = 2/3 in both conventions;
    class 2: absent from truth and prediction -> paper 0, monai NaN;
    class 3: truth 2 voxels, prediction empty -> 0 in both."""
    label = np.zeros((4, 4, 2), np.int64)
    pred = np.zeros((4, 4, 2), np.int64)
    label[0, :, 0] = 1
    pred[0, :2, 0] = 1
    label[3, :2, 1] = 3
    return pred, label


def test_volume_dice_paper_convention():
    pred, label = _case()
    np.testing.assert_allclose(volume_dice(pred, label, 4, convention="paper"), [2 / 3, 0.0, 0.0])


def test_volume_dice_monai_convention():
    pred, label = _case()
    scores = volume_dice(torch.as_tensor(pred), torch.as_tensor(label), 4, convention="monai")
    np.testing.assert_allclose(scores, [2 / 3, np.nan, 0.0])
    assert mean_over_classes(scores) == pytest.approx(1 / 3)


def test_predicted_class_absent_from_truth():
    label = np.zeros((3, 3, 1), np.int64)
    pred = label.copy()
    pred[1, 1, 0] = 2
    np.testing.assert_allclose(volume_dice(pred, label, 3, "paper"), [0.0, 0.0])
    np.testing.assert_allclose(volume_dice(pred, label, 3, "monai"), [np.nan, np.nan])
    assert np.isnan(mean_over_classes(volume_dice(pred, label, 3, "monai")))


def test_perfect_and_partial_overlap():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (6, 5, 4))
    np.testing.assert_allclose(volume_dice(label, label, 3), [1.0, 1.0])
    pred = label.copy()
    pred[label == 2] = 1  # class 2 vanishes into class 1
    n1, n2 = (label == 1).sum(), (label == 2).sum()
    np.testing.assert_allclose(volume_dice(pred, label, 3), [2 * n1 / (n1 + n1 + n2), 0.0])


def test_volume_dice_errors():
    pred, label = _case()
    with pytest.raises(ConfigError, match="convention"):
        volume_dice(pred, label, 4, convention="nnunet")
    with pytest.raises(DataError, match=r"\(4, 4, 2\) != label shape \(4, 4, 1\)"):
        volume_dice(pred, label[..., :1], 4)
    with pytest.raises(DataError, match=r"0..2"):
        volume_dice(pred, label, 3)
    with pytest.raises(DataError, match="integer"):
        volume_dice(pred.astype(float), label, 4)


class IntensityClassifier(nn.Module):
    spatial_dims = 2

    def __init__(self):
        super().__init__()
        self.register_buffer("centres", torch.arange(4.0).view(1, -1, 1, 1))
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return -((3 * x - self.centres) ** 2) + self.dummy


def _volume_item(vid, classes, truth, affine):
    return {"id": vid, "patient": vid.split("_")[0], "image": torch.as_tensor(classes / 3.0, dtype=torch.float32)[None],
            "label_original": torch.as_tensor(truth), "spatial_shape": truth.shape[:2], "affine": affine}


def test_evaluate_volumes_writes_csv_and_predictions(tmp_path):
    rng = np.random.default_rng(1)
    items, expected = [], []
    for n in range(3):
        classes = rng.integers(0, 4, (8, 8, 3))
        truth = np.repeat(np.repeat(classes, 2, 0), 2, 1)  # the stored size is 16 x 16
        truth[:, :, 0] = np.where(truth[:, :, 0] == 3, 0, truth[:, :, 0])  # some mistakes to score
        items.append(_volume_item(f"patient{n}_frame01", classes, truth, np.diag([2.0, 2.0, 8.0, 1.0])))
        expected.append(volume_dice(np.repeat(np.repeat(classes, 2, 0), 2, 1), truth, 4))
    result = evaluate_volumes(IntensityClassifier(), items, 4, csv_path=tmp_path / "dice.csv",
                              prediction_dir=tmp_path / "pred")
    np.testing.assert_allclose(result.scores, np.stack(expected))
    assert result.mean_dice == pytest.approx(np.mean([row.mean() for row in expected]))
    np.testing.assert_allclose(result.per_class, np.stack(expected).mean(axis=0))
    with open(tmp_path / "dice.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [f"patient{n}_frame01" for n in range(3)]
    assert rows[1]["patient"] == "patient1"
    assert float(rows[2]["class_3"]) == pytest.approx(expected[2][2], abs=1e-6)
    saved = nib.load(str(tmp_path / "pred" / "patient0_frame01.nii.gz"))
    np.testing.assert_allclose(saved.affine, np.diag([2.0, 2.0, 8.0, 1.0]))
    assert saved.shape == (16, 16, 3)


def test_evaluate_volumes_errors():
    with pytest.raises(DataError, match="no volume"):
        evaluate_volumes(IntensityClassifier(), [], 4)
    with pytest.raises(DataError, match="label_original"):
        evaluate_volumes(IntensityClassifier(), [{"id": "v", "image": torch.zeros(1, 8, 8, 2),
                                                   "spatial_shape": (8, 8)}], 4)
