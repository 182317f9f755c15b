"""Volume preprocessing as MONAI dictionary transforms.

The chain :func:`volume_preprocessing` turns a volume record into arrays ready to be
sliced: ``LoadVolumed`` (decode and check) -> ``VolumeIntensityd`` (per-volume
normalisation) -> ``ResizeSlicesd`` (every slice to ``S x S``; labels nearest).
Normalisation is per volume, as in the WSL4MIS ACDC preprocessing the paper used, so
it must run before slicing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import Compose, MapTransform, Resize, Transform

from ..errors import ConfigError
from .volume_io import load_volume_arrays

__all__ = [
    "LoadVolumed",
    "ResizeSlicesd",
    "VolumeIntensityd",
]

INTENSITY_MODES = ("percentile", "zscore", "window", "minmax", "none")


class LoadVolumed(Transform):
    """Decode a volume record into arrays and check them.

    Input: a volume record (``format``, ``image``, ``label``, ``scribble`` sources).
    Output: the record with ``image`` (C, H, W, D) float32, ``label`` / ``scribble``
    (H, W, D) uint8 where present, ``label_original`` (a copy of ``label`` at the stored
    size, for 3D evaluation), ``affine`` (4, 4) and ``spatial_shape`` (H, W).

    Raises:
        DataError: see :func:`~alseg_monai.data.volume_io.load_volume_arrays`.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 4) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def __call__(self, data: Mapping) -> dict:
        out = dict(data)
        for key in ("label", "scribble"):
            out.pop(key, None)
        out.update(load_volume_arrays(dict(data), self.num_classes, self.ignore_index))
        out["spatial_shape"] = tuple(int(s) for s in out["image"].shape[1:3])
        if "label" in out:
            out["label_original"] = out["label"]
        return out


def normalise_intensity(
    image: np.ndarray,
    mode: str = "percentile",
    percentile: float = 99.0,
    window: Sequence[float] = (40.0, 400.0),
    scale: float | None = None,
) -> np.ndarray:
    """Normalise one volume ``(C, H, W, D)``.

    Args:
        mode: ``percentile`` (clip at the ``percentile``-th percentile, then min-max to
            [0, 1]; ACDC), ``zscore`` (zero mean, unit variance; MS-CMR), ``window``
            (CT: clip to ``window = (centre, width)`` in HU and scale to [0, 1]),
            ``minmax`` (to [0, 1]; divided by ``scale`` instead when given, e.g. 255 for
            8-bit video frames), ``none`` (as stored; WSL4MIS h5 is already in [0, 1]).
    """
    image = image.astype(np.float32, copy=False)
    if mode == "none":
        return image
    if mode == "percentile":
        image = np.minimum(image, np.percentile(image, percentile))
        mode = "minmax"
    if mode == "minmax":
        if scale is not None:
            return image / np.float32(scale)
        low, high = float(image.min()), float(image.max())
        return (image - low) / (high - low) if high > low else np.zeros_like(image)
    if mode == "zscore":
        std = float(image.std())
        return (image - float(image.mean())) / std if std > 0 else image - float(image.mean())
    if mode == "window":
        centre, width = float(window[0]), float(window[1])
        low = centre - width / 2
        return np.clip((image - low) / width, 0.0, 1.0).astype(np.float32)
    raise ConfigError(f"intensity mode {mode!r} is unknown; expected one of {INTENSITY_MODES}")


class VolumeIntensityd(MapTransform):
    """Dictionary wrapper of :func:`normalise_intensity` (per volume, all channels together)."""

    def __init__(self, keys: str | Sequence[str] = "image", mode: str = "percentile", **options) -> None:
        super().__init__(keys)
        if mode not in INTENSITY_MODES:
            raise ConfigError(f"intensity mode {mode!r} is unknown; expected one of {INTENSITY_MODES}")
        self.mode = mode
        self.options = options

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict:
        out = dict(data)
        for key in self.key_iterator(out):
            out[key] = normalise_intensity(out[key], self.mode, **self.options)
        return out


class ResizeSlicesd(MapTransform):
    """Resize every slice of ``(C, H, W, D)`` (image) or ``(H, W, D)`` (labels) arrays to
    ``image_size x image_size``, keeping D; images bilinear, labels nearest.

    Args:
        keys: keys to resize; those named in ``label_keys`` use nearest neighbour.
        image_size: output in-plane size S.
    """

    def __init__(
        self,
        keys: Sequence[str] = ("image", "label", "scribble"),
        image_size: int = 256,
        label_keys: Sequence[str] = ("label", "scribble"),
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        if int(image_size) < 8:
            raise ConfigError(f"image_size={image_size}; expected an integer >= 8")
        self.image_size = int(image_size)
        self.label_keys = set(label_keys)
        size = (self.image_size, self.image_size, -1)
        self._resize_image = Resize(size, mode="trilinear", align_corners=False)
        # "nearest-exact" samples pixel centres as the bilinear image resize does;
        # torch's "nearest" would shift labels by up to half a pixel against the image.
        self._resize_label = Resize(size, mode="nearest-exact")

    def __call__(self, data: Mapping[Hashable, np.ndarray]) -> dict:
        out = dict(data)
        for key in self.key_iterator(out):
            array = out[key]
            if key in self.label_keys:
                resized = self._resize_label(torch.as_tensor(array[None], dtype=torch.float32))[0]
                out[key] = np.asarray(resized, dtype=np.float32).round().astype(np.uint8)
            else:
                out[key] = np.asarray(self._resize_image(torch.as_tensor(array, dtype=torch.float32)), dtype=np.float32)
        return out


def volume_preprocessing(
    image_size: int,
    num_classes: int,
    ignore_index: int | None = 4,
    intensity: str = "percentile",
    intensity_options: Mapping | None = None,
) -> Compose:
    """The load -> normalise -> resize chain applied once per volume."""
    return Compose(
        [
            LoadVolumed(num_classes, ignore_index),
            VolumeIntensityd("image", intensity, **dict(intensity_options or {})),
            ResizeSlicesd(("image", "label", "scribble"), image_size),
        ]
    )
