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

import numpy as np

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
        num_classes: the classes (background included): the one statement of the class
            count. The reader gets it (``dataset_options`` need not repeat it; a different
            ``dataset_options["num_classes"]`` is an error naming both), and the label files
            are checked against it when loaded.
        image_size: in-plane size of every preprocessed slice.
        ignore_index: the scribbles' "unannotated" value, outside ``0 .. num_classes - 1``
            (None: ``num_classes``, the first value outside the classes); given to the
            reader as ``num_classes`` is.
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
        self.num_classes, self.image_size = int(num_classes), int(image_size)
        self.ignore_index = self.num_classes if ignore_index is None else int(ignore_index)
        self.preprocessing, self.preprocessing_key = preprocessing, describe(preprocessing)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.progress = progress

    def read(self) -> None:
        """Index the dataset and split it by patient (no pixel is decoded).

        Raises:
            ConfigError: ``dataset_options`` state another ``num_classes`` or
                ``ignore_index``, ``ignore_index`` is a class, the dataset declares
                another class count (a datalist's ``labels``), or the split leaves no
                training, validation or test patient.
            DataError: see the reader.
        """
        self.index = read_dataset(self.dataset_kind, self.dataset_dir, **self.reader_options())
        for key, expected in (("num_classes", self.num_classes), ("ignore_index", self.ignore_index)):
            if getattr(self.index, key) != expected:  # a reader that does not take the setting
                raise ConfigError(f"{key}={expected}, but the {self.dataset_kind} reader indexed {self.dataset_dir} "
                                  f"with {key} {getattr(self.index, key)}; set {key} to {getattr(self.index, key)} "
                                  f"(--{key} {getattr(self.index, key)} or the data config)")
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

    def reader_options(self) -> dict:
        """``dataset_options`` with the run's ``num_classes`` and ``ignore_index``: the class
        count is stated once, and every reader takes it from here.

        Raises:
            ConfigError: ``dataset_options`` give another value of either, or
                ``ignore_index`` is one of the classes.
        """
        options = dict(self.dataset_options)
        for key, value in (("num_classes", self.num_classes), ("ignore_index", self.ignore_index)):
            given = options.get(key)
            if given is not None and given != value:
                raise ConfigError(
                    f"dataset_options#{key}={given!r}, but {key}={value}; the reader takes {key} from the run's "
                    f"{key}: remove {key} from dataset_options, or set {key} to {given!r} (--{key} {given!r} or "
                    "the data config) if that is the right value"
                )
            options[key] = value
        if 0 <= self.ignore_index < self.num_classes:
            raise ConfigError(
                f"ignore_index={self.ignore_index} is one of the classes 0..{self.num_classes - 1} "
                f"(num_classes={self.num_classes}), so an unannotated scribble pixel would read as that class; "
                f"leave ignore_index at its default \"@num_classes\" ({self.num_classes}, the first value outside "
                "the classes) or set another value outside them"
            )
        return options

    def load(self) -> None:
        """Preprocess every volume of the splits once (reusing the persistent cache), each
        label file checked against ``num_classes``; then :meth:`check_class_count`."""
        volumes = [v for name in ("train", "val", "test") for v in self.splits[name].volumes]
        subset = DatasetIndex(self.index.kind, self.index.root, volumes, [], self.index.num_classes,
                              self.index.channels, self.index.ignore_index, options=self.index.options)
        self.cache = SliceCache(subset.volumes, self.image_size, subset.num_classes, subset.ignore_index,
                                preprocessing=self.preprocessing, preprocessing_key=self.preprocessing_key,
                                cache_dir=self.cache_dir, progress=self.progress)
        self.check_class_count()
        self.val_volumes = VolumeDataset(self.splits["val"].volumes, self.cache)
        self.test_volumes = VolumeDataset(self.splits["test"].volumes, self.cache)
        logger.info("%s\n  split: %s", self.index.summary(), {k: len(v.patients) for k, v in self.splits.items()})

    def check_class_count(self) -> None:
        """A ``num_classes`` above the labels' classes fails too (a label value at or
        above it already failed on load): the highest class must occur in some label,
        unless the dataset names its classes (a datalist's ``labels``). Run after loading,
        before any training; skipped when no volume has a label (a human annotates them).

        Raises:
            ConfigError: no label of any split holds class ``num_classes - 1``; the
                message names the values the labels hold.
        """
        if self.index.labels:
            return
        counts = np.zeros(256, np.int64)
        labelled = 0
        for name in ("train", "val", "test"):
            for volume in self.splits[name].volumes:
                entry = self.cache.volume(volume["id"])
                label = entry.get("label_original", entry.get("label"))
                if label is not None:
                    labelled += 1
                    counts += np.bincount(np.asarray(label, np.uint8).ravel(), minlength=256)
        values = [int(v) for v in np.flatnonzero(counts)]
        if labelled and values and values[-1] < self.num_classes - 1:
            fix = values[-1] + 1
            raise ConfigError(
                f"num_classes={self.num_classes}, but the labels of the {self.dataset_kind} data at "
                f"{self.dataset_dir} ({labelled} labelled volumes) hold the values {values}: no voxel of class "
                f"{self.num_classes - 1}; set num_classes to {fix} (--num_classes {fix} or the data config)"
                + (", or name every class in the datalist's 'labels'" if self.dataset_kind == "datalist" else "")
            )

    @property
    def patients(self) -> dict[str, list[str]]:
        """Patients of each split."""
        return {name: part.patients for name, part in self.splits.items()}

    def depth(self, volume_id: str) -> int:
        """Number of slices of a preprocessed volume."""
        return int(self.cache.volume(volume_id)["image"].shape[-1])
