"""Dataset readers: each indexes one native layout into a :class:`DatasetIndex`."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from ...errors import ConfigError, DataError
from ..records import DatasetIndex

__all__ = ["read_dataset"]

# kind -> "module:function"; imported on first use so a reader's optional
# dependencies (h5py, SimpleITK, PIL) load only when that layout is read.
READERS: dict[str, str] = {
    "acdc": "alseg_monai.data.readers.acdc:read_acdc",
    "wsl4mis_h5": "alseg_monai.data.readers.wsl4mis:read_wsl4mis_h5",
    "mscmr": "alseg_monai.data.readers.mscmr:read_mscmr",
    "chaos": "alseg_monai.data.readers.chaos:read_chaos",
    "davis": "alseg_monai.data.readers.davis:read_davis",
    "datalist": "alseg_monai.data.readers.datalist:read_datalist",
}


def _reader(kind: str):
    if kind not in READERS:
        raise ConfigError(f"unknown dataset kind {kind!r}; expected one of {sorted(READERS)}")
    module, name = READERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def read_dataset(kind: str, root: str | Path, **options) -> DatasetIndex:
    """Index every slice and volume of a dataset in its native layout.

    Args:
        kind: ``acdc``, ``wsl4mis_h5``, ``mscmr``, ``chaos``, ``davis`` or ``datalist``.
        root: the dataset folder (for ``datalist``: the JSON file, or its folder).
        options: reader options (see each reader), e.g. ``scribble_root`` for ACDC.

    Returns:
        A :class:`DatasetIndex` with ``.slices`` and ``.volumes``. Headers and shapes are
        checked before returning; voxel values are checked when the volumes are loaded
        (:class:`~alseg_monai.data.SliceCache`).

    Raises:
        ConfigError: unknown ``kind`` or reader option.
        DataError: missing / empty / unreadable dataset, inconsistent files.
    """
    reader = _reader(kind)
    accepted = inspect.signature(reader).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for dataset kind {kind!r}; accepted: {sorted(set(accepted) - {'root'})}"
        )
    index = reader(root, **options)
    if not index.volumes or not index.slices:
        raise DataError(
            f"{root}: no {kind} volumes found (empty dataset); check that dataset_dir points at the data and "
            f"dataset_kind={kind!r} names its layout (described in {READERS[kind].split(':')[0]})"
        )
    return index
