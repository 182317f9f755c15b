"""Whole-volume inference for 3D evaluation (paper Section 3.2.2 and REFERENCE "Evaluation").

A test volume is predicted slice by slice with a 2D network (MONAI ``SliceInferer``,
batched over slices), logits -> argmax, and each predicted slice is resized back to the
volume's stored in-plane size with nearest neighbour (MONAI ``Resize``), so Dice is
computed against the original labels. :func:`predict_volume_3d` does the same for the 3D
UNet of the volume baseline. :func:`save_prediction_nifti` writes a prediction with its
source affine.

Shapes: ``image`` (C, S, S, D) float (every slice resized to S x S, the layout of
``VolumeDataset``); ``spatial_shape`` (H, W); predictions (H, W, D) int64, in the
axis order of the stored volume.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from monai.inferers import SliceInferer
from monai.networks import eval_mode
from monai.transforms import Resize
from monai.utils import convert_to_numpy
from torch import nn

from ..errors import ConfigError, DataError
from ..utils.io import atomic_write_bytes

__all__ = ["predict", "save_prediction_nifti"]


def _as_volume(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.ndim != 4:
        raise DataError(f"image: expected a (C, S, S, D) volume, got shape {tuple(image.shape)}")
    return image.float()


def _as_shape(spatial_shape: Sequence[int] | torch.Tensor | np.ndarray) -> tuple[int, int]:
    shape = tuple(int(s) for s in torch.as_tensor(spatial_shape).reshape(-1).tolist())
    if len(shape) != 2 or min(shape) < 1:
        raise DataError(f"spatial_shape: expected (H, W) with positive sizes, got {shape}")
    return shape


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _autocast(device: torch.device):
    # Mixed precision is a CUDA speed-up only; on CPU bfloat16 autocast is slower here.
    return torch.autocast("cuda") if device.type == "cuda" else contextlib.nullcontext()


def _classes_at(logits: torch.Tensor, spatial_shape: tuple[int, int]) -> np.ndarray:
    """(1, K, S, S, D) logits -> (H, W, D) int64 classes, nearest-neighbour resized in-plane.

    The argmax comes first, so the resize copies class indices (pixel-centre aligned
    ``nearest-exact``; the depth keeps its size).
    """
    classes = logits.argmax(dim=1).cpu()  # (1, S, S, D): channel-first for Resize
    resized = Resize((*spatial_shape, -1), mode="nearest-exact")(classes)
    return convert_to_numpy(resized[0]).astype(np.int64)


def predict_volume(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    spatial_shape: Sequence[int],
    batch_size: int = 32,
) -> np.ndarray:
    """Predict a volume slice by slice with a 2D network.

    Args:
        model: a 2D network returning (B, K, S, S) logits in eval mode.
        image: (C, S, S, D) volume.
        spatial_shape: (H, W), the stored slice size the prediction is resized to.
        batch_size: slices per forward pass.

    Returns:
        (H, W, D) int64 class map.

    Raises:
        DataError: wrong image or shape.
        ConfigError: ``batch_size`` < 1.
    """
    image, spatial_shape = _as_volume(image), _as_shape(spatial_shape)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive number of slices, got {batch_size}")
    device = _model_device(model)

    def network(batch: torch.Tensor) -> torch.Tensor:
        # On CUDA the networks train channels-last; feeding that layout keeps cuDNN's kernels, and results, alike.
        return model(batch.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else batch)

    # One window per slice (roi = the whole slice, no overlap); logits gathered on the CPU.
    inferer = SliceInferer(roi_size=tuple(image.shape[1:3]), sw_batch_size=batch_size, spatial_dim=2, overlap=0.0,
                           sw_device=device, device=torch.device("cpu"))
    with eval_mode(model), torch.inference_mode(), _autocast(device):
        logits = inferer(image[None], network)
    return _classes_at(logits, spatial_shape)


def predict_volume_3d(model: nn.Module, image: torch.Tensor | np.ndarray, spatial_shape: Sequence[int]) -> np.ndarray:
    """Predict a whole volume with a 3D network, then resize each slice to (H, W).

    Args:
        model: a 3D network, (1, C, S, S, D) -> (1, K, S, S, D) logits.
        image: (C, S, S, D) volume.
        spatial_shape: (H, W).

    Returns:
        (H, W, D) int64 class map.
    """
    image, spatial_shape = _as_volume(image), _as_shape(spatial_shape)
    device = _model_device(model)
    with eval_mode(model), torch.inference_mode(), _autocast(device):
        logits = model(image[None].to(device))
    return _classes_at(logits, spatial_shape)


def predict(model: nn.Module, image: torch.Tensor | np.ndarray, spatial_shape: Sequence[int],
            batch_size: int = 32) -> np.ndarray:
    """:func:`predict_volume` or :func:`predict_volume_3d`, by the network's ``spatial_dims`` (default 2)."""
    if getattr(model, "spatial_dims", 2) == 3:
        return predict_volume_3d(model, image, spatial_shape)
    return predict_volume(model, image, spatial_shape, batch_size=batch_size)


# Not MONAI's SaveImage: it squeezes a one-slice (H, W, 1) map to 2D and then fails to write it
# with the 4x4 affine (MONAI 1.6.1), and it writes in place rather than atomically.
def save_prediction_nifti(pred: np.ndarray | torch.Tensor, affine: np.ndarray | torch.Tensor,
                          path: str | os.PathLike) -> None:
    """Write an (H, W, D) class map as NIfTI with the source volume's 4x4 ``affine``, atomically.

    ``.nii.gz`` paths are gzip-compressed. The smallest integer type that holds the
    classes is used (uint8 for up to 256 classes).

    Raises:
        DataError: a prediction that is not 3D, or an affine that is not 4x4.
    """
    pred = np.asarray(torch.as_tensor(pred).cpu())
    affine = np.asarray(torch.as_tensor(affine).cpu(), dtype=np.float64)
    if pred.ndim != 3:
        raise DataError(f"pred: expected an (H, W, D) class map, got shape {pred.shape}")
    if affine.shape != (4, 4):
        raise DataError(f"affine: expected a 4x4 matrix, got shape {affine.shape}")
    dtype = np.uint8 if pred.min() >= 0 and pred.max() < 256 else np.int32
    image = nib.Nifti1Image(pred.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    data = image.to_bytes()
    atomic_write_bytes(path, gzip.compress(data) if str(path).endswith(".gz") else data)
