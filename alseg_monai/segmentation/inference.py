"""Whole-volume inference for 3D evaluation (paper Section 3.2.2 and REFERENCE "Evaluation").

A test volume is predicted slice by slice with a 2D network (batched over slices),
logits -> argmax, and each predicted slice is resized back to the volume's stored
in-plane size with nearest neighbour, so Dice is computed against the original
labels. :func:`predict_volume_3d` does the same for the 3D UNet of the volume
baseline. :func:`save_prediction_nifti` writes a prediction with its source affine.

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
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..utils import atomic_write_bytes

__all__ = ["predict", "predict_volume", "predict_volume_3d", "resize_slices_nearest", "save_prediction_nifti"]


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


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def resize_slices_nearest(classes: torch.Tensor, spatial_shape: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of (D, S, S) class maps to (D, H, W) (pixel-centre aligned)."""
    if tuple(classes.shape[-2:]) == tuple(spatial_shape):
        return classes
    resized = F.interpolate(classes[:, None].float(), size=spatial_shape, mode="nearest-exact")
    return resized[:, 0].round().long()


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
    slices = image.permute(3, 0, 1, 2)  # (D, C, S, S): one batch item per slice
    outputs = []
    with _eval_mode(model), torch.inference_mode(), _autocast(device):
        for start in range(0, slices.shape[0], batch_size):
            batch = slices[start:start + batch_size].to(device, non_blocking=True)
            if device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.append(model(batch).argmax(dim=1).cpu())
    classes = resize_slices_nearest(torch.cat(outputs), spatial_shape)
    return classes.permute(1, 2, 0).numpy().astype(np.int64)


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
    with _eval_mode(model), torch.inference_mode(), _autocast(device):
        classes = model(image[None].to(device)).argmax(dim=1)[0].cpu()  # (S, S, D)
    return resize_slices_nearest(classes.permute(2, 0, 1), spatial_shape).permute(1, 2, 0).numpy().astype(np.int64)


def predict(model: nn.Module, image: torch.Tensor | np.ndarray, spatial_shape: Sequence[int],
            batch_size: int = 32) -> np.ndarray:
    """:func:`predict_volume` or :func:`predict_volume_3d`, by the network's ``spatial_dims`` (default 2)."""
    if getattr(model, "spatial_dims", 2) == 3:
        return predict_volume_3d(model, image, spatial_shape)
    return predict_volume(model, image, spatial_shape, batch_size=batch_size)


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
