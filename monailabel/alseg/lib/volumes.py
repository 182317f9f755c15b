"""Volumes of the datastore as the networks see them, and the slice labels the app keeps.

Slices are indexed along the third voxel axis of the stored volume (``k`` of IJK in 3D
Slicer; ``D`` of the library's ``(H, W, D)`` convention). Preprocessing is the bundle's:
per-volume intensity normalisation (``intensity``), then every slice resized to
``image_size x image_size`` (labels nearest neighbour), as in the bundle's
``val_transforms``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alseg_monai.data import ResizeSlicesd, VolumeIntensityd
from alseg_monai.data.volume_io import read_array

logger = logging.getLogger(__name__)

SLICE_AXIS = 2


@dataclass(frozen=True)
class Volume:
    """One preprocessed datastore volume.

    Attributes:
        image_id: the datastore id.
        image: (1, S, S, D) float32, normalised and resized.
        affine: (4, 4) voxel-to-world (RAS) affine of the stored volume.
        shape: stored (H, W, D).
    """

    image_id: str
    image: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]

    @property
    def num_slices(self) -> int:
        return int(self.shape[SLICE_AXIS])

    def slice_positions(self, slices) -> list[list[float]]:
        """World (RAS, mm) coordinates of the centre of each slice, for a viewer to jump to."""
        h, w, _ = self.shape
        points = np.array([[(h - 1) / 2.0, (w - 1) / 2.0, float(z), 1.0] for z in slices], dtype=np.float64)
        if len(points) == 0:
            return []
        return [[round(float(c), 3) + 0.0 for c in row[:3]] for row in (self.affine @ points.T).T]


def as_volume(array: np.ndarray, path) -> np.ndarray:
    """(H, W, D) kept, (H, W, D, 1) squeezed, anything else refused."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise ValueError(f"{path}: array of shape {tuple(array.shape)}; the app segments 3D volumes (H, W, D)")
    return array


class VolumeCache:
    """Preprocessed volumes by datastore path, reloaded when the file changes."""

    def __init__(self, image_size: int, intensity: dict) -> None:
        self.image_size, self.intensity = int(image_size), dict(intensity)
        self._normalise = VolumeIntensityd("image", **self.intensity)
        self._resize = ResizeSlicesd(("image", "label"), self.image_size)
        self._items: dict[str, tuple[tuple[int, int], Volume]] = {}
        self._lock = threading.Lock()

    def load(self, image_id: str, path: str | os.PathLike, keep: bool = True) -> Volume:
        """The preprocessed volume; ``keep=False`` neither reads nor fills the cache (e.g. an
        uploaded file that is not in the datastore)."""
        path = str(path)
        stat = os.stat(path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._items.get(image_id) if keep else None
            if cached is not None and cached[0] == stamp:
                return cached[1]
        array, affine = read_array(path)
        array = as_volume(array, path)
        image = self._resize(self._normalise({"image": array[None].astype(np.float32)}))["image"]
        volume = Volume(image_id, np.ascontiguousarray(image, dtype=np.float32), np.asarray(affine, np.float64),
                        tuple(int(s) for s in array.shape))
        if keep:
            with self._lock:
                self._items[image_id] = (stamp, volume)
        return volume

    def resize_label(self, label: np.ndarray) -> np.ndarray:
        """(H, W, D) class map -> (S, S, D) uint8, nearest neighbour."""
        return self._resize({"label": np.asarray(label, dtype=np.uint8)})["label"]


def load_datastore(datastore, cache: VolumeCache, image_ids=None) -> list[Volume]:
    """The datastore's 3D volumes (``image_ids`` or all), sorted by id; files that are not
    readable 3D volumes are skipped with a warning."""
    volumes = []
    for image_id in sorted(image_ids if image_ids is not None else datastore.list_images()):
        path = datastore.get_image_uri(image_id)
        try:
            volumes.append(cache.load(image_id, path))
        except Exception as err:  # a 2D image or a broken file must not stop the others
            logger.warning("alseg: skipping %s (%s): %s", image_id, path, err)
    return volumes


def read_label(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """A label file as an (H, W, D) integer array of the image's ``shape``."""
    array, _ = read_array(path)
    array = as_volume(array, path)
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"label {path} has shape {tuple(array.shape)}, the image {tuple(shape)}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"label {path} holds NaN or infinity")
        array = np.rint(array)
    return array.astype(np.int64)


def nonempty_slices(label: np.ndarray) -> list[int]:
    return [int(z) for z in np.flatnonzero(label.reshape(-1, label.shape[SLICE_AXIS]).any(axis=0))]


def merged_label_path(labels_dir: Path, image_id: str) -> Path:
    return Path(labels_dir) / f"{image_id}.nii.gz"
