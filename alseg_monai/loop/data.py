"""The data of an experiment: the dataset read in its native layout, split by patient, and
every volume of the splits preprocessed once into a :class:`~alseg_monai.data.SliceCache`.

Reading and splitting (:meth:`ExperimentData.read`) are cheap and happen first, so
every check of the inputs runs before the preprocessing (:meth:`ExperimentData.load`)
and before any training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ..data import DatasetIndex, SliceCache, VolumeDataset, read_dataset, split_dataset
from ..errors import ConfigError
from ..utils.describe import describe

__all__ = ["ExperimentData"]

logger = logging.getLogger(__name__)


class ExperimentData:
    """A dataset, its patient split and its preprocessed slices.

    Args:
        dataset_kind: reader of :func:`~alseg_monai.data.read_dataset`.
        dataset_dir: the dataset folder in its native layout (never written).
        dataset_options: reader options.
        split: keyword arguments of :func:`~alseg_monai.data.split_dataset`.
        num_classes: the classes the run expects (background included); must be the
            reader's.
        image_size: in-plane size of every preprocessed slice.
        ignore_index: the scribbles' "unannotated" value the run expects; must be the reader's.
        preprocessing: the per-volume transform, volume record -> arrays (the bundle's
            ``val_transforms``: load and check, intensity, resize); its description
            (:func:`~alseg_monai.utils.describe`) keys the persistent cache, so a changed
            transform rebuilds it.
        cache_dir: persistent cache folder (None: in memory only).
        progress: progress bar while preprocessing.
    """

    def __init__(self, dataset_kind: str, dataset_dir: str | os.PathLike, dataset_options: Mapping, split: Mapping,
                 num_classes: int, ignore_index: int | None, image_size: int, preprocessing: Callable,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True) -> None:
        self.dataset_kind, self.dataset_dir = dataset_kind, str(dataset_dir)
        self.dataset_options, self.split = dict(dataset_options), dict(split)
        self.num_classes, self.ignore_index, self.image_size = int(num_classes), ignore_index, int(image_size)
        self.preprocessing, self.preprocessing_key = preprocessing, describe(preprocessing)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.progress = progress

    def read(self) -> None:
        """Index the dataset and split it by patient (no pixel is decoded).

        Raises:
            ConfigError: ``num_classes`` differs from the reader's, or the split leaves
                no training, validation or test patient.
            DataError: see the reader.
        """
        self.index = read_dataset(self.dataset_kind, self.dataset_dir, **self.dataset_options)
        for key, expected in (("num_classes", self.num_classes), ("ignore_index", self.ignore_index)):
            if getattr(self.index, key) != expected:
                raise ConfigError(f"{key}={expected}, but the {self.dataset_kind} data at {self.dataset_dir} has "
                                  f"{key} {getattr(self.index, key)}; set {key} to {getattr(self.index, key)} in "
                                  "the data config")
        self.splits = split_dataset(self.index, **self.split)
        if not self.splits["test"].volumes:
            raise ConfigError("split: the test split is empty; adjust split fractions or lists")
        if not self.splits["val"].volumes:
            raise ConfigError("split: the validation split is empty; the best model of a round is chosen on it: "
                              "raise the second of split#fractions, name patients in split#lists#val, or give "
                              "a datalist a 'validation' list")
        self.pool = self.splits["train"].slices
        self.pool_ids = [r["id"] for r in self.pool]
        self.records = {r["id"]: r for r in self.pool}
        self.volumes = {v["id"]: v for v in self.splits["train"].volumes}

    def load(self) -> None:
        """Preprocess every volume of the splits once (reusing the persistent cache)."""
        volumes = [v for name in ("train", "val", "test") for v in self.splits[name].volumes]
        subset = DatasetIndex(self.index.kind, self.index.root, volumes, [], self.index.num_classes,
                              self.index.channels, self.index.ignore_index, options=self.index.options)
        self.cache = SliceCache(subset.volumes, self.image_size, subset.num_classes, subset.ignore_index,
                                preprocessing=self.preprocessing, preprocessing_key=self.preprocessing_key,
                                cache_dir=self.cache_dir, progress=self.progress)
        self.val_volumes = VolumeDataset(self.splits["val"].volumes, self.cache)
        self.test_volumes = VolumeDataset(self.splits["test"].volumes, self.cache)
        logger.info("%s\n  split: %s", self.index.summary(), {k: len(v.patients) for k, v in self.splits.items()})

    @property
    def patients(self) -> dict[str, list[str]]:
        """Patients of each split."""
        return {name: part.patients for name, part in self.splits.items()}

    def depth(self, volume_id: str) -> int:
        """Number of slices of a preprocessed volume."""
        return int(self.cache.volume(volume_id)["image"].shape[-1])
