"""Training augmentation of the per-round segmentation models (paper Section 3.2.2).

As in the WSL4MIS baseline: with probability 1/2 a random rot90 plus a flip, else
with probability 1/2 a random rotation of up to +/- 20 degrees, else nothing, all in
the image plane. Built from MONAI dictionary transforms and seeded through
``Compose.set_random_state``.

A rotation pads the corners it uncovers. Images and full masks pad with 0
(background); a scribble map must pad with its "unannotated" value instead, or the
corners would become background supervision, so the rotation branch shifts
scribbles to make ``ignore_index`` the zero value while rotating.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.transforms import (
    Compose,
    EnsureTyped,
    Flipd,
    Identityd,
    Lambdad,
    OneOf,
    RandRotate90d,
    RandRotated,
    SelectItemsd,
)

from ..errors import ConfigError

__all__ = ["train_augmentation"]


def encode_ignore(label: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Map ``ignore_index`` to 0 and class c to c + 1, so zero padding means "unannotated"."""
    return torch.where(label == ignore_index, torch.zeros_like(label), label + 1)


def decode_ignore(label: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Inverse of :func:`encode_ignore` (after nearest-neighbour resampling)."""
    label = torch.as_tensor(label).round().long()
    return torch.where(label == 0, torch.full_like(label, ignore_index), label - 1)


class _Encode:
    # A named callable (not a lambda) so DataLoader workers can pickle the transform.
    def __init__(self, ignore_index: int, inverse: bool) -> None:
        self.ignore_index, self.inverse = ignore_index, inverse

    def __call__(self, label: torch.Tensor) -> torch.Tensor:
        return (decode_ignore if self.inverse else encode_ignore)(label, self.ignore_index)


def train_augmentation(
    label_key: str = "label",
    ignore_index: int | None = None,
    rotate_degrees: float = 20.0,
    weights: Sequence[float] = (0.5, 0.25, 0.25),
    spatial_dims: int = 2,
    image_key: str = "image",
    seed: int = 0,
) -> Compose:
    """The seeded random augmentation of training items ``{image_key, label_key}``.

    Every operation acts in the (H, W) plane, of slices (C, H, W) or volumes (C, H, W, D).

    Args:
        label_key: the target key (``label`` for full masks, ``scribble`` for scribbles).
        ignore_index: the unannotated value of a scribble target; None for full masks.
        rotate_degrees: the in-plane rotation range +/- (paper 20).
        weights: probabilities of (rot90 + flip, rotation, unchanged) (paper 1/2, 1/4, 1/4).
        spatial_dims: 2 for slices, 3 for volumes.
        image_key: the image key.
        seed: seed of the transform's random state.

    Returns:
        A MONAI ``Compose`` that keeps only the two keys and returns plain tensors
        (image float32, target int64), so the batch does not carry MetaTensor overhead.

    Raises:
        ConfigError: bad weights, angle or spatial_dims.
    """
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims: expected 2 or 3, got {spatial_dims}")
    if len(weights) != 3 or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"weights: expected 3 non-negative probabilities (rot90+flip, rotate, none), got {weights}")
    if not 0 <= rotate_degrees <= 180:
        raise ConfigError(f"rotate_degrees: expected an angle in [0, 180], got {rotate_degrees}")
    keys = (image_key, label_key)
    rot_flip = Compose([
        RandRotate90d(keys, prob=1.0, max_k=3, spatial_axes=(0, 1)),
        OneOf([Flipd(keys, spatial_axis=0), Flipd(keys, spatial_axis=1)]),
    ])
    # MONAI names a 3D in-plane (H, W) rotation by the axis it turns about, the third.
    angle = {"range_x" if spatial_dims == 2 else "range_z": math.radians(rotate_degrees)}
    rotate = [RandRotated(keys, **angle, prob=1.0, mode=("bilinear", "nearest"),
                          padding_mode="zeros", keep_size=True)]
    if ignore_index is not None:
        rotate = [Lambdad(label_key, _Encode(ignore_index, inverse=False)), *rotate,
                  Lambdad(label_key, _Encode(ignore_index, inverse=True))]
    transform = Compose([
        SelectItemsd(keys),
        EnsureTyped(keys, data_type="tensor", track_meta=False),
        OneOf([rot_flip, Compose(rotate), Identityd(keys)], weights=list(weights)),
        EnsureTyped(image_key, data_type="tensor", dtype=torch.float32, track_meta=False),
        EnsureTyped(label_key, data_type="tensor", dtype=torch.int64, track_meta=False),
    ])
    transform.set_random_state(seed=seed)
    return transform
