"""Helpers shared by the dataset readers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...errors import DataError
from ..geometry import grid_difference
from ..volume_io import probe_image_shape, read_grid

__all__ = ["check_same_shape", "volume_record"]

logger = logging.getLogger(__name__)

# What a user can change when a label is not on its image's grid (the reader option).
RESAMPLE_HINT = (
    "write the {role} on the image's grid, or, if it only is stored on another grid, set the reader option "
    'resample_labels=true (bundle: "dataset_options": {{"resample_labels": true}}) to resample it onto the image '
    "grid by nearest neighbour"
)


def check_root(root: str | Path, kind: str) -> Path:
    """``root`` as a Path; :class:`DataError` when it is missing or not a folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found (dataset_dir of a {kind} dataset)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected the root folder of a {kind} dataset")
    return root


def _spatial(shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    """A header shape as a 2D or 3D spatial shape (a trailing axis of 1 dropped)."""
    if len(shape) == 4 and shape[-1] == 1:
        shape = shape[:3]
    if len(shape) not in (2, 3):
        raise DataError(f"{path}: image of shape {shape}; expected a 2D or 3D image (one channel, one time point)")
    return shape


def check_same_shape(paths: Sequence[str | Path | None]) -> tuple[int, ...]:
    """Header shapes of ``paths`` (None entries skipped) must agree; returns the first's,
    2D or 3D.

    Raises:
        DataError: naming both files and their shapes when they differ.
    """
    present = [Path(p) for p in paths if p is not None]
    first = probe_image_shape(present[0])
    for other in present[1:]:
        shape = probe_image_shape(other)
        if shape != first:
            raise DataError(f"{other}: shape {shape} does not match the image {present[0]} of shape {first}")
    return _spatial(first, present[0])


def check_same_grid(
    image: str | Path,
    label: str | Path | None = None,
    scribble: str | Path | None = None,
    resample_labels: bool = False,
    ignore_index: int | None = None,
) -> tuple[tuple[int, ...], dict[str, int]]:
    """Check from the headers that ``label`` and ``scribble`` lie on ``image``'s voxel grid:
    shape, spacing, direction and origin within
    :data:`~alseg_monai.data.geometry.GEOMETRY_TOLERANCES`.

    Args:
        image, label, scribble: the volume's files (label and scribble may be None).
        resample_labels: accept a label or scribble on another grid; it is resampled onto
            the image grid by nearest neighbour when loaded.
        ignore_index: the scribbles' "unannotated" value, given to the scribble voxels
            outside its field of view when resampled (label voxels get 0, background).

    Returns:
        The image's spatial shape (2D or 3D), and the volume record's ``resample`` entry:
        ``{key: value outside the field of view}`` of the files to resample (empty when
        all agree).

    Raises:
        DataError: naming both files, the field and both values, when a file is not on the
            image grid and ``resample_labels`` is False.
    """
    image = Path(image)
    grid = read_grid(image)
    shape = _spatial(grid.shape, image)
    resample: dict[str, int] = {}
    for role, path in (("label", label), ("scribble", scribble)):
        if path is None:
            continue
        difference = grid_difference(grid, read_grid(path))
        if difference is None:
            continue
        field, theirs, ours = difference
        if not resample_labels:
            tolerance = f" ({difference.tolerance})" if difference.tolerance else ""
            raise DataError(
                f"{path}: {field} {theirs} does not match the image {image} of {field} {ours}{tolerance}; "
                + RESAMPLE_HINT.format(role=role)
            )
        logger.info("%s: %s %s differs from the image %s (%s); resampled onto the image grid (nearest neighbour)",
                    path, field, theirs, image, ours)
        resample[role] = 0 if role == "label" or ignore_index is None else int(ignore_index)
    return shape, resample


def volume_record(
    volume: str,
    patient: str,
    fmt: str,
    image: str | list[str],
    label: str | list[str] | None,
    scribble: str | list[str] | None,
    num_slices: int,
    spatial_shape: Iterable[int],
    **extra,
) -> dict:
    """A volume record (see docs/design.md)."""
    record = {
        "id": volume,
        "patient": patient,
        "volume": volume,
        "format": fmt,
        "image": image,
        "label": label,
        "scribble": scribble,
        "num_slices": int(num_slices),
        "spatial_shape": [int(s) for s in spatial_shape],
    }
    record.update(extra)
    return record
