"""Helpers shared by the dataset readers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ...errors import DataError
from ..volume_io import probe_image_shape

__all__ = ["check_root", "check_same_shape", "volume_record"]


def check_root(root: str | Path, kind: str) -> Path:
    """``root`` as a Path; :class:`DataError` when it is missing or not a folder."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found (dataset_dir of a {kind} dataset)")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected the root folder of a {kind} dataset")
    return root


def check_same_shape(paths: Sequence[str | Path | None]) -> tuple[int, ...]:
    """Header shapes of ``paths`` (None entries skipped) must agree; returns the first's.

    Raises:
        DataError: naming both files and their shapes when they differ.
    """
    present = [Path(p) for p in paths if p is not None]
    first = probe_image_shape(present[0])
    for other in present[1:]:
        shape = probe_image_shape(other)
        if shape != first:
            raise DataError(
                f"{other}: shape {shape} does not match the image {present[0]} of shape {first}"
            )
    if len(first) == 4 and first[-1] == 1:
        first = first[:3]
    if len(first) not in (2, 3):
        raise DataError(f"{present[0]}: image of shape {first}; expected a 2D or 3D image")
    return first


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
