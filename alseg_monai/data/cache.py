"""Preprocessed slices held in memory, loaded once per volume.

:class:`SliceCache` runs :func:`~alseg_monai.data.transforms.volume_preprocessing` once
per volume (decoding each file once, never per slice or per epoch), optionally
persisting the result under ``cache_dir`` so later runs skip decoding altogether.
:class:`SliceDataset` and :class:`VolumeDataset` are torch datasets over it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, find_alseg_error
from ..utils.io import atomic_write_bytes
from ..utils.progress import bar_disable
from .records import DatasetIndex
from .transforms import volume_preprocessing

__all__ = ["SliceCache", "SliceDataset", "VolumeDataset"]

logger = logging.getLogger(__name__)

# Part of every persistent cache key: bump when preprocessing changes its output, so
# caches written by an older version are rebuilt rather than reused.
_PREPROCESSING_VERSION = 2

# Per-kind intensity normalisation (REFERENCE.md "Datasets").
DEFAULT_INTENSITY: dict[str, tuple[str, dict]] = {
    "acdc": ("percentile", {"percentile": 99.0}),
    "wsl4mis_h5": ("none", {}),
    "mscmr": ("zscore", {}),
    "chaos": ("window", {"window": (40.0, 400.0)}),
    "davis": ("minmax", {"scale": 255.0}),
    "datalist": ("percentile", {"percentile": 99.0}),
}

_ARRAY_KEYS = ("image", "label", "scribble", "label_original")


class SliceCache:
    """Every slice of ``volumes`` preprocessed to ``(C, S, S)``, in memory.

    Args:
        volumes: volume records (from :func:`~alseg_monai.data.read_dataset`).
        image_size: in-plane size S of every slice.
        num_classes: classes of the labels, background included (checked on load).
        ignore_index: the scribble "unannotated" value.
        intensity: normalisation mode (see :func:`~alseg_monai.data.normalise_intensity`).
        intensity_options: its options (``percentile``, ``window``, ``scale``).
        preprocessing: the per-volume transform (volume record -> arrays, e.g. the bundle's
            ``val_transforms``); default :func:`~alseg_monai.data.volume_preprocessing` of
            the settings above.
        preprocessing_key: a JSON-able description of ``preprocessing`` (e.g. its bundle
            config), part of the persistent cache's key.
        cache_dir: optional folder for a persistent cache (one ``.npz`` per volume, keyed by
            a hash of the record, the files' sizes and times, and the settings).
        progress: show a progress bar while loading.

    Raises:
        DataError: on the first volume that cannot be read or fails its checks (before
            any training starts).
    """

    def __init__(
        self,
        volumes: Sequence[dict],
        image_size: int,
        num_classes: int,
        ignore_index: int | None = 4,
        intensity: str = "percentile",
        intensity_options: Mapping | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        preprocessing: Any = None,
        preprocessing_key: Any = None,
    ) -> None:
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self._settings = {
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "ignore_index": ignore_index,
            "intensity": intensity,
            "intensity_options": dict(intensity_options or {}),
        }
        if preprocessing is not None:
            if preprocessing_key is None:
                raise ConfigError("SliceCache: give preprocessing_key, a JSON-able description of the preprocessing "
                                  "transform, so that a persistent cache is rebuilt when it changes")
            self._settings = {"image_size": self.image_size, "num_classes": self.num_classes,
                              "ignore_index": ignore_index, "preprocessing": preprocessing_key}
        self.cache_dir = Path(cache_dir) if cache_dir else None
        # The transform chain is a local, not an attribute: MONAI's set_rnd walks a dataset's
        # attributes, and a Randomizable kept here would shift the augmentation seeds of
        # datasets built on this cache depending on whether it was loaded from disk.
        transform: list = [] if preprocessing is None else [preprocessing]  # default built on the first miss
        self._volumes: dict[str, dict[str, Any]] = {}
        for record in tqdm(list(volumes), desc="loading volumes", unit="vol", disable=bar_disable(progress)):
            self._volumes[record["id"]] = self._load(record, transform)

    @classmethod
    def from_index(cls, index: DatasetIndex, image_size: int, **kwargs) -> SliceCache:
        """A cache over ``index.volumes`` with the index's classes and per-kind intensity defaults."""
        mode, options = DEFAULT_INTENSITY.get(index.kind, ("percentile", {}))
        kwargs.setdefault("intensity", index.options.get("intensity", mode))
        kwargs.setdefault("intensity_options", index.options.get("intensity_options", options))
        return cls(index.volumes, image_size, index.num_classes, index.ignore_index, **kwargs)

    # loading -----------------------------------------------------------------------------
    def _cache_key(self, record: dict) -> str:
        stamps = []
        for key in ("image", "label", "scribble"):
            sources = record.get(key) or []
            for source in [sources] if isinstance(sources, str) else sources:
                # a DICOM series folder: its files, so that a changed slice is seen
                files = sorted(Path(source).iterdir()) if Path(source).is_dir() else [source]
                for name in files:
                    stat = os.stat(name)
                    stamps.append((str(name), stat.st_size, stat.st_mtime_ns))
        payload = json.dumps([_PREPROCESSING_VERSION, record, stamps, self._settings], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    def _load(self, record: dict, transform: list) -> dict[str, Any]:
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{record['id']}-{self._cache_key(record)}.npz"
            if path.is_file():
                try:
                    with np.load(path) as stored:
                        return {k: stored[k] for k in stored.files}
                except (OSError, ValueError) as err:  # an unreadable cache entry is rebuilt
                    logger.warning("ignoring unreadable cache file %s (%s)", path, err)
        if not transform:
            settings = self._settings
            transform.append(volume_preprocessing(
                self.image_size, self.num_classes, self.ignore_index,
                settings["intensity"], settings["intensity_options"],
            ))
        try:
            data = transform[0](dict(record))
        except RuntimeError as err:  # MONAI's Compose wraps errors: surface the user-facing one
            raise find_alseg_error(err) or err

        entry = {k: np.ascontiguousarray(data[k]) for k in _ARRAY_KEYS if k in data}
        entry["affine"] = np.asarray(data["affine"], dtype=np.float64)
        entry["spatial_shape"] = np.asarray(data["spatial_shape"], dtype=np.int64)
        if path is not None:
            buffer = io.BytesIO()
            np.savez(buffer, **entry)
            atomic_write_bytes(path, buffer.getvalue())
        return entry

    # access --------------------------------------------------------------------------------
    def volume(self, volume_id: str) -> dict[str, Any]:
        """The cached arrays of a volume: ``image`` (C, S, S, D), ``label`` / ``scribble``
        (S, S, D), ``label_original`` (H, W, D), ``affine``, ``spatial_shape``."""
        try:
            return self._volumes[volume_id]
        except KeyError as err:
            raise DataError(f"volume {volume_id!r} is not in this cache") from err

    def slice(self, record: Mapping) -> dict[str, np.ndarray]:
        """``{"image": (C, S, S) float32, "label": (1, S, S), "scribble": (1, S, S)}`` (labels
        only where the volume has them) for a slice record."""
        entry = self.volume(record["volume"])
        z = int(record["slice"])
        depth = entry["image"].shape[-1]
        if not 0 <= z < depth:
            raise DataError(f"slice {record['id']}: z={z} outside volume {record['volume']} of {depth} slices")
        out = {"image": entry["image"][..., z]}
        for key in ("label", "scribble"):
            if key in entry:
                out[key] = entry[key][None, ..., z]
        return out

    def images(self, records: Sequence[Mapping]) -> np.ndarray:
        """The images of ``records`` stacked: ``(N, C, S, S)`` float32."""
        if not records:
            return np.zeros((0, 0, self.image_size, self.image_size), np.float32)
        return np.stack([self.slice(r)["image"] for r in records]).astype(np.float32, copy=False)

    def __contains__(self, volume_id: str) -> bool:
        return volume_id in self._volumes

    def __len__(self) -> int:
        return len(self._volumes)


class SliceDataset(Dataset):
    """2D samples of slice records from a :class:`SliceCache`.

    Item: ``{"image": (C, S, S) float32 tensor, "label": (1, S, S) int64, "scribble":
    (1, S, S) int64, "id", "patient", "volume", "slice"}`` with only the ``keys`` asked for
    (label keys only where available), after ``transform`` (a MONAI dict transform, e.g.
    random augmentation, applied on every access).

    Args:
        records: slice records.
        cache: the cache holding their volumes.
        keys: array keys to return (``image`` always).
        transform: optional transform applied last.
        annotations: optional ``{slice id: {"label" | "scribble": (S, S) array}}`` that
            replaces the cache's arrays (annotations imported from a human annotator).
    """

    def __init__(
        self,
        records: Sequence[Mapping],
        cache: SliceCache,
        keys: Sequence[str] = ("image", "label", "scribble"),
        transform=None,
        annotations: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self.records = list(records)
        self.cache = cache
        self.keys = tuple(dict.fromkeys(("image", *keys)))
        self.transform = transform
        self.annotations = annotations or {}
        for record in self.records:
            cache.volume(record["volume"])  # fail now, not in a worker

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        arrays = self.cache.slice(record)
        for key, array in self.annotations.get(record["id"], {}).items():
            arrays[key] = np.asarray(array)[None]
        item: dict[str, Any] = {key: record[key] for key in ("id", "patient", "volume", "slice")}
        for key in self.keys:
            if key in arrays:
                dtype = torch.float32 if key == "image" else torch.int64
                item[key] = torch.as_tensor(np.array(arrays[key]), dtype=dtype)
        return self.transform(item) if self.transform is not None else item


class VolumeDataset(Dataset):
    """Whole volumes for 3D evaluation and the volume-based baseline.

    Item: ``{"image": (C, S, S, D) float32, "label": (1, S, S, D) int64, "scribble":
    (1, S, S, D) int64, "label_original": (H, W, D) int64, "spatial_shape": (H, W),
    "affine": (4, 4) float64 array, "id", "patient"}`` (label keys where available).
    """

    def __init__(self, volumes: Sequence[Mapping], cache: SliceCache) -> None:
        self.volumes = list(volumes)
        self.cache = cache
        for record in self.volumes:
            cache.volume(record["id"])

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict:
        record = self.volumes[index]
        entry = self.cache.volume(record["id"])
        item: dict[str, Any] = {
            "id": record["id"],
            "patient": record["patient"],
            "image": torch.as_tensor(entry["image"], dtype=torch.float32),
            "spatial_shape": tuple(int(s) for s in entry["spatial_shape"]),
            "affine": np.asarray(entry["affine"]),
        }
        for key in ("label", "scribble"):
            if key in entry:
                item[key] = torch.as_tensor(entry[key][None], dtype=torch.int64)
        if "label_original" in entry:
            item["label_original"] = torch.as_tensor(entry["label_original"], dtype=torch.int64)
        return item
