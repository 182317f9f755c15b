"""Volume inference: slice-by-slice prediction resized back to the stored size; NIfTI output."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.segmentation import UNet3D, predict, predict_volume, predict_volume_3d, save_prediction_nifti


class IntensityClassifier(nn.Module):
    """A network whose class is round(3 x) for intensity x: its argmax is known exactly."""

    spatial_dims = 2

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.register_buffer("centres", torch.arange(num_classes, dtype=torch.float32).view(1, -1, 1, 1))
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the module a device
        self.calls = []

    def forward(self, x):
        self.calls.append((x.shape[0], self.training))
        return -((3 * x - self.centres) ** 2) + self.dummy


def _volume(size=8, depth=5, seed=0):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, (size, size, depth))
    image = torch.as_tensor(classes / 3.0, dtype=torch.float32)[None]  # (1, S, S, D)
    return image, classes


def test_predict_volume_integer_upsampling_repeats_pixels():
    image, classes = _volume()
    model = IntensityClassifier()
    pred = predict_volume(model, image, (16, 24), batch_size=2)
    assert pred.shape == (16, 24, 5) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, np.repeat(np.repeat(classes, 2, axis=0), 3, axis=1))
    assert [n for n, _ in model.calls] == [2, 2, 1]  # batched over slices
    assert all(not training for _, training in model.calls)
    assert model.training  # mode restored


def test_predict_volume_non_integer_resize_is_pixel_centre_nearest():
    image, classes = _volume(size=8, depth=3, seed=1)
    pred = predict_volume(IntensityClassifier(), image, torch.tensor([13, 11]))
    rows = np.floor((np.arange(13) + 0.5) * 8 / 13).astype(int)
    cols = np.floor((np.arange(11) + 0.5) * 8 / 11).astype(int)
    np.testing.assert_array_equal(pred, classes[rows][:, cols])


def test_predict_volume_same_size_and_batch_size_invariance():
    image, classes = _volume(depth=7, seed=2)
    model = IntensityClassifier()
    np.testing.assert_array_equal(predict_volume(model, image, (8, 8), batch_size=1), classes)
    np.testing.assert_array_equal(predict(model, image, (8, 8), batch_size=64), classes)


def test_predict_volume_input_errors():
    model = IntensityClassifier()
    with pytest.raises(DataError, match=r"\(C, S, S, D\).*\(8, 8, 5\)"):
        predict_volume(model, torch.zeros(8, 8, 5), (8, 8))
    with pytest.raises(DataError, match="spatial_shape"):
        predict_volume(model, torch.zeros(1, 8, 8, 5), (8,))
    with pytest.raises(ConfigError, match="batch_size"):
        predict_volume(model, torch.zeros(1, 8, 8, 5), (8, 8), batch_size=0)


def test_predict_volume_3d_resizes_each_slice():
    network = UNet3D(in_channels=1, num_classes=3, channels=(4, 8), strides=((2, 2, 1),), num_res_units=1)
    pred = predict_volume_3d(network, torch.rand(1, 16, 16, 4), (20, 24))
    assert pred.shape == (20, 24, 4) and pred.min() >= 0 and pred.max() < 3
    np.testing.assert_array_equal(predict(network, torch.rand(1, 16, 16, 4), (16, 16)).shape, (16, 16, 4))


@pytest.mark.parametrize("name", ["pred.nii.gz", "pred.nii"])
def test_save_prediction_nifti_keeps_the_affine(tmp_path, name):
    pred = np.random.default_rng(0).integers(0, 4, (12, 10, 3))
    affine = np.array([[0, 1.5, 0, -20], [1.4, 0, 0, 10], [0, 0, 8.0, 3], [0, 0, 0, 1]])
    path = tmp_path / "out" / name
    save_prediction_nifti(pred, affine, path)
    image = nib.load(str(path))
    np.testing.assert_array_equal(np.asarray(image.dataobj), pred)
    np.testing.assert_allclose(image.affine, affine)
    assert image.get_data_dtype() == np.uint8
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left


def test_save_prediction_nifti_errors(tmp_path):
    with pytest.raises(DataError, match="affine"):
        save_prediction_nifti(np.zeros((4, 4, 2), int), np.eye(3), tmp_path / "x.nii.gz")
    with pytest.raises(DataError, match=r"\(H, W, D\)"):
        save_prediction_nifti(np.zeros((4, 4), int), np.eye(4), tmp_path / "x.nii.gz")
