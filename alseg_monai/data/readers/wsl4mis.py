"""The WSL4MIS reader: ACDC as preprocessed into HDF5 by WSL4MIS, read in place.

WSL4MIS (Luo et al., "Scribble-supervised medical image segmentation via dual-branch
network and dynamically mixed pseudo labels supervision", MICCAI 2022) is the form of
ACDC the paper's code trains on (paper section 4, "Datasets"). Layout (``root`` is the
folder holding the two sub-folders, e.g. WSL4MIS's ``data/ACDC``; either may be absent)::

    ACDC_training_slices/patientNNN_frameFF_slice_K.h5   one slice: datasets (H, W)
    ACDC_training_volumes/patientNNN_frameFF.h5          one frame: datasets (D, H, W)
    train_slices.list, train.list, val.list, test.list   WSL4MIS split lists

Datasets of every file: ``image`` (float32 in [0, 1], clipped at the 99th percentile per
volume), ``label`` (0 bg, 1 RV, 2 Myo, 3 LV) and ``scribble`` (0-3, and 4 =
unannotated); ``label`` and ``scribble`` may be absent.

Records:
    * ``K`` is parsed with all its digits: ``slice_10.h5`` is slice 10 (the authors'
      code read one digit, so slices 10-13 collided with 1 and were lost).
    * A volume with slice files is one volume record of format ``h5_slices`` whose
      ``image`` / ``label`` / ``scribble`` are its slice files in ``K`` order (these are
      what WSL4MIS trains on, and only they are sure to carry the scribbles); every
      slice record points at its own file. ``K`` must run 0, 1, ... without gaps.
    * When ``ACDC_training_volumes`` also holds that volume, the file is recorded under
      the extra key ``volume_file`` after checking that its ``(D, H, W)`` equals
      (number of slice files, H, W). Both hold the same preprocessed data, so loading
      from the slices loses nothing.
    * A volume present only in ``ACDC_training_volumes`` is a volume record of format
      ``h5_volume`` (WSL4MIS keeps its validation and test frames this way).
    * Patient = the volume name up to ``_frame`` (``patient001``); a volume name
      without ``_frame`` is its own patient.

The split lists are not read here: pass them to
``split_dataset(index, method="lists", lists={"train": root / "train.list", "val":
root / "val.list", "test": root / "test.list"})`` (slice names in
``train_slices.list`` resolve to their patients too). Files other than ``*.h5`` in the
two folders are ignored.

Options: ``num_classes=4``, ``ignore_index=4`` (the scribbles' unannotated value),
``slices_dir="ACDC_training_slices"``, ``volumes_dir="ACDC_training_volumes"`` (the
folder names, for other datasets preprocessed the WSL4MIS way).
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from .common import check_root, volume_record

__all__ = ["read_wsl4mis_h5"]

_KEYS = ("image", "label", "scribble")
_SLICE_NAME = re.compile(r"^(?P<volume>.+)_slice_(?P<z>\d+)\.h5$")
_PATIENT = re.compile(r"^(?P<patient>.+?)_frame\d+$")


def _patient_of(volume: str) -> str:
    match = _PATIENT.match(volume)
    return match["patient"] if match else volume


def _h5_files(folder: Path) -> list[Path]:
    files = (p for p in folder.iterdir() if p.is_file() and p.suffix == ".h5")
    # the name breaks ties of the natural key (slice_3.h5, slice_03.h5) so errors are reproducible
    return sorted(files, key=lambda p: (natural_key(p), p.name))


def _h5_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the ``image`` / ``label`` / ``scribble`` datasets of an HDF5 file, read
    from its header (no voxel data is read).

    Raises:
        DataError: the file cannot be opened as HDF5, or a key is not a dataset.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return {key: tuple(int(s) for s in handle[key].shape) for key in _KEYS if key in handle}
    except Exception as err:  # h5py raises OSError, KeyError, AttributeError on bad files
        raise DataError(
            f"{path}: cannot read the HDF5 file ({type(err).__name__}: {err}); "
            "expected an HDF5 file with datasets 'image', 'label', 'scribble'"
        ) from err


def _check_shapes(path: Path, shapes: dict[str, tuple[int, ...]], ndim: int, axes: str) -> None:
    """``image`` present with ``ndim`` axes; ``label`` / ``scribble`` of the same shape."""
    if "image" not in shapes:
        raise DataError(f"{path}: no dataset 'image' (found {sorted(shapes)}); expected image {axes}")
    image = shapes["image"]
    if len(image) != ndim:
        raise DataError(f"{path}: dataset 'image' has shape {image}; expected {axes}")
    for key in ("label", "scribble"):
        if key in shapes and shapes[key] != image:
            raise DataError(
                f"{path}: dataset '{key}' has shape {shapes[key]}, the image {image}; expected equal shapes"
            )


def _group_slice_files(folder: Path) -> dict[str, dict[int, Path]]:
    """``{volume: {K: path}}`` for the slice files in ``folder``."""
    groups: dict[str, dict[int, Path]] = {}
    for path in _h5_files(folder):
        match = _SLICE_NAME.match(path.name)
        if match is None:
            raise DataError(f"{path}: not named <volume>_slice_<K>.h5; every .h5 file in {folder} must be one slice")
        volume, z = match["volume"], int(match["z"])
        slices = groups.setdefault(volume, {})
        if z in slices:  # e.g. slice_3.h5 and slice_03.h5
            raise DataError(f"{path}: slice K={z} of volume {volume} is also stored in {slices[z].name}")
        slices[z] = path
    return groups


def _ordered_slices(volume: str, slices: dict[int, Path], folder: Path) -> list[Path]:
    """The slice files of ``volume`` in ``K`` order; a gap in ``K`` is an error."""
    missing = sorted(set(range(max(slices) + 1)) - set(slices))
    if missing:
        raise DataError(
            f"{folder}: volume {volume} has slice files up to K={max(slices)} but none for K={missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; expected {volume}_slice_K.h5 for every K from 0"
        )
    return [slices[z] for z in range(len(slices))]


def _slice_stack_shapes(volume: str, files: list[Path]) -> dict[str, tuple[int, ...]]:
    """The common dataset shapes of a volume's slice files; they must all agree."""
    first_path, first = files[0], None
    for path in files:
        shapes = _h5_shapes(path)
        _check_shapes(path, shapes, 2, "(H, W) for one slice")
        if first is None:
            first = shapes
        elif shapes != first:
            raise DataError(
                f"{path}: datasets {shapes} differ from {first_path.name} {first}; every slice of volume "
                f"{volume} must hold the same datasets with one shape"
            )
    return first


def _sliced_volume(volume: str, files: list[Path], volume_file: Path | None) -> tuple[dict, list[dict]]:
    shapes = _slice_stack_shapes(volume, files)
    height, width = shapes["image"]
    extra = {}
    if volume_file is not None:
        stored = _h5_shapes(volume_file)
        _check_shapes(volume_file, stored, 3, "(D, H, W)")
        expected = (len(files), height, width)
        if stored["image"] != expected:
            raise DataError(
                f"{volume_file}: image of shape {stored['image']} (D, H, W), but {files[0].parent} holds "
                f"{len(files)} slices of {height} x {width} for {volume}; expected {expected}"
            )
        extra["volume_file"] = str(volume_file)
    paths = [str(p) for p in files]
    sources = [{key: (path if key in shapes else None) for key in _KEYS} for path in paths]
    record = volume_record(
        volume, _patient_of(volume), "h5_slices", paths,
        paths if "label" in shapes else None, paths if "scribble" in shapes else None,
        num_slices=len(files), spatial_shape=(height, width), **extra,
    )
    return record, make_slice_records(record, sources)


def _stored_volume(volume: str, path: Path) -> tuple[dict, list[dict]]:
    shapes = _h5_shapes(path)
    _check_shapes(path, shapes, 3, "(D, H, W)")
    depth, height, width = shapes["image"]
    record = volume_record(
        volume, _patient_of(volume), "h5_volume", str(path),
        str(path) if "label" in shapes else None, str(path) if "scribble" in shapes else None,
        num_slices=depth, spatial_shape=(height, width),
    )
    return record, make_slice_records(record)


def read_wsl4mis_h5(
    root: str | Path,
    num_classes: int = 4,
    ignore_index: int = 4,
    slices_dir: str = "ACDC_training_slices",
    volumes_dir: str = "ACDC_training_volumes",
) -> DatasetIndex:
    """Index a WSL4MIS HDF5 folder (see the module docstring).

    Args:
        root: the folder holding ``slices_dir`` and / or ``volumes_dir``.
        num_classes: 4 (bg, RV, Myo, LV).
        ignore_index: the scribbles' unannotated value.
        slices_dir: name of the per-slice folder.
        volumes_dir: name of the per-volume folder.

    Raises:
        DataError: neither folder exists, a file is misnamed or unreadable, a slice
            number is missing, datasets have the wrong rank or differ in shape, or a
            volume file disagrees with its slice files.
    """
    root = check_root(root, "wsl4mis_h5")
    slice_folder, volume_folder = root / slices_dir, root / volumes_dir
    if not slice_folder.is_dir() and not volume_folder.is_dir():
        raise DataError(
            f"{root}: neither {slices_dir}/ nor {volumes_dir}/ found; expected the WSL4MIS layout "
            f"({slices_dir}/<volume>_slice_<K>.h5 and / or {volumes_dir}/<volume>.h5)"
        )
    groups = _group_slice_files(slice_folder) if slice_folder.is_dir() else {}
    volume_files = {p.stem: p for p in _h5_files(volume_folder)} if volume_folder.is_dir() else {}
    volumes, slices = [], []
    for volume in sorted(set(groups) | set(volume_files), key=natural_key):
        if volume in groups:
            files = _ordered_slices(volume, groups[volume], slice_folder)
            record, records = _sliced_volume(volume, files, volume_files.get(volume))
        else:
            record, records = _stored_volume(volume, volume_files[volume])
        volumes.append(record)
        slices.extend(records)
    return DatasetIndex("wsl4mis_h5", str(root), volumes, slices, num_classes, 1, ignore_index)
