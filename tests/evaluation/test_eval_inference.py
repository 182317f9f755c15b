"""Volume inference: slice-by-slice prediction resized back to the stored size; NIfTI output.

The MONAI-based prediction (``SliceInferer``, ``Resize``) is checked against the
hand-written one it replaced, kept here as the reference: predictions must be
bit-identical, or the test Dice of existing runs would move.
"""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.evaluation import predict, save_prediction_nifti
from alseg_monai.evaluation.inference import predict_volume, predict_volume_3d
from alseg_monai.segmentation import DualBranchUNet, UNet2D, UNet3D


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


# The hand-written implementation replaced by MONAI's SliceInferer and Resize (CPU path).
def _reference_resize(classes, spatial_shape):
    if tuple(classes.shape[-2:]) == tuple(spatial_shape):
        return classes
    return F.interpolate(classes[:, None].float(), size=spatial_shape, mode="nearest-exact")[:, 0].round().long()


def _reference_predict_volume(model, image, spatial_shape, batch_size=32):
    was_training = model.training
    model.eval()
    slices = torch.as_tensor(image).float().permute(3, 0, 1, 2)
    outputs = []
    with torch.inference_mode():
        for start in range(0, slices.shape[0], batch_size):
            outputs.append(model(slices[start:start + batch_size]).argmax(dim=1))
    model.train(was_training)
    return _reference_resize(torch.cat(outputs), tuple(spatial_shape)).permute(1, 2, 0).numpy().astype(np.int64)


def _reference_predict_volume_3d(model, image, spatial_shape):
    model.eval()
    with torch.inference_mode():
        classes = model(torch.as_tensor(image).float()[None]).argmax(dim=1)[0]
    return _reference_resize(classes.permute(2, 0, 1), tuple(spatial_shape)).permute(1, 2, 0).numpy().astype(np.int64)


class _Centred(nn.Module):
    """A network's logits minus their per-slice spatial means, so that most classes win somewhere."""

    spatial_dims = 2

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x):
        logits = self.network(x)
        return logits - logits.mean(dim=(2, 3), keepdim=True)


def _random_network(cls, seed):
    torch.manual_seed(seed)
    network = cls(in_channels=1, num_classes=4, channels=(4, 8, 16), dropout=(0.1, 0.2, 0.3))
    for module in network.modules():  # non-trivial BatchNorm statistics, so eval mode matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return _Centred(network)


@pytest.mark.parametrize("cls", [UNet2D, DualBranchUNet])
@pytest.mark.parametrize("size, depth, target, batch_size", [
    (32, 7, (32, 32), 32), (32, 7, (80, 72), 3), (32, 5, (45, 19), 1), (24, 9, (13, 11), 4), (16, 1, (30, 50), 2),
])
def test_predict_volume_is_bit_identical_to_the_hand_written_one(cls, size, depth, target, batch_size):
    for seed in range(3):
        network = _random_network(cls, seed)
        image = torch.randn(1, size, size, depth, generator=torch.Generator().manual_seed(seed))
        expected = _reference_predict_volume(network, image, target, batch_size)
        assert len(np.unique(expected)) >= 3  # a prediction with a few classes
        np.testing.assert_array_equal(predict_volume(network, image, target, batch_size=batch_size), expected)
        assert network.training  # the mode is restored


@pytest.mark.parametrize("target", [(16, 16), (20, 24), (11, 13)])
def test_predict_volume_3d_is_bit_identical_to_the_hand_written_one(target):
    torch.manual_seed(0)
    network = UNet3D(in_channels=1, num_classes=3, channels=(4, 8), strides=((2, 2, 1),), num_res_units=1)
    image = torch.randn(1, 16, 16, 4, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(predict(network, image, target), _reference_predict_volume_3d(network, image, target))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_predict_volume_on_cuda_matches_the_hand_written_cuda_path():
    network = _random_network(UNet2D, 0).cuda().to(memory_format=torch.channels_last)
    image = torch.randn(1, 32, 32, 11, generator=torch.Generator().manual_seed(0))
    network.eval()
    slices, outputs = image.permute(3, 0, 1, 2), []
    with torch.inference_mode(), torch.autocast("cuda"):
        for start in range(0, 11, 4):
            batch = slices[start:start + 4].cuda().contiguous(memory_format=torch.channels_last)
            outputs.append(network(batch).argmax(dim=1).cpu())
    expected = _reference_resize(torch.cat(outputs), (40, 36)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(predict_volume(network, image, (40, 36), batch_size=4), expected)


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


AFFINE = np.array([[0, 1.5, 0, -20], [1.4, 0, 0, 10], [0, 0, 8.0, 3], [0, 0, 0, 1]])


@pytest.mark.parametrize("name", ["pred.nii.gz", "pred.nii"])
def test_save_prediction_nifti_keeps_the_affine(tmp_path, name):
    pred = np.random.default_rng(0).integers(0, 4, (12, 10, 3))
    path = tmp_path / "out" / name
    save_prediction_nifti(pred, AFFINE, path)
    image = nib.load(str(path))
    np.testing.assert_array_equal(np.asarray(image.dataobj), pred)
    np.testing.assert_allclose(image.affine, AFFINE)
    assert image.get_data_dtype() == np.uint8
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left


def test_save_prediction_nifti_keeps_a_one_slice_volume_3d(tmp_path):
    # What MONAI's SaveImage cannot do (it squeezes the slice axis, then fails on the 3D affine).
    pred = np.random.default_rng(2).integers(0, 300, (6, 5, 1))
    save_prediction_nifti(torch.as_tensor(pred), torch.as_tensor(AFFINE), tmp_path / "one.nii.gz")
    image = nib.load(str(tmp_path / "one.nii.gz"))
    assert image.shape == (6, 5, 1) and image.get_data_dtype() == np.int32  # more than 256 classes
    np.testing.assert_array_equal(np.asarray(image.dataobj), pred)


def test_save_prediction_nifti_errors(tmp_path):
    with pytest.raises(DataError, match="affine"):
        save_prediction_nifti(np.zeros((4, 4, 2), int), np.eye(3), tmp_path / "x.nii.gz")
    with pytest.raises(DataError, match=r"\(H, W, D\)"):
        save_prediction_nifti(np.zeros((4, 4), int), np.eye(4), tmp_path / "x.nii.gz")


def test_evaluation_does_not_import_segmentation():
    # segmentation's validator uses evaluation (Dice, prediction): the dependency runs one way only.
    code = ("import sys, alseg_monai.evaluation; "
            "assert not [m for m in sys.modules if m.startswith('alseg_monai.segmentation')]")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
