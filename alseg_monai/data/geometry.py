"""Voxel grids of volumes, the check that a label lies on its image's grid, and the
nearest-neighbour resampling of a label onto that grid.

A grid is what a file header says about where its voxels are: ``shape``, ``spacing``
(mm per voxel), ``origin`` (mm, the centre of voxel 0) and ``direction`` (3 x 3 direction
cosines), all read from a ``(4, 4)`` voxel-to-world affine in the RAS+ frame of nibabel
(SimpleITK's LPS headers are converted to it, see
:func:`~alseg_monai.data.volume_io.read_header`), so a NIfTI label compares with an NRRD,
MHA or DICOM image.

Tolerances (:data:`GEOMETRY_TOLERANCES`); two grids agree when
    * ``shape``: equal (a trailing axis of length 1 dropped, 2D = one slice);
    * ``spacing``: every axis within a relative 1e-4 (0.0001 mm of a 1 mm voxel);
    * ``origin``: within 0.01 of the image's smallest spacing (0.01 mm at 1 mm voxels);
    * ``direction``: every direction cosine within 1e-4 (about 0.006 degrees).
They pass the rounding of float32 NIfTI headers and of NRRD / MHA headers written with
six significant digits, which ITK's own defaults (1e-6) do not always, and refuse any
label written on another grid: 3 mm voxels for 2 mm, a shift by more than 1 % of a
voxel, a flipped or swapped axis. When several fields differ, the first of shape,
spacing, direction, origin is named (a flipped axis also moves the origin).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = []

GEOMETRY_TOLERANCES = {"spacing": 1e-4, "origin": 1e-2, "direction": 1e-4}
_TOLERANCE_TEXT = {
    "shape": "",
    "spacing": "relative tolerance {spacing:g}",
    "origin": "tolerance {origin:g} of a voxel",
    "direction": "tolerance {direction:g} per direction cosine",
}


class Grid(NamedTuple):
    """The voxel grid of a volume: ``shape`` (spatial, 2 or 3 axes), ``spacing`` (3,) mm,
    ``origin`` (3,) mm, ``direction`` (3, 3) cosines (columns = voxel axes), RAS+."""

    shape: tuple[int, ...]
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray

    @classmethod
    def from_affine(cls, shape: Sequence[int], affine: np.ndarray) -> Grid:
        """The grid of an array of ``shape`` with the ``(4, 4)`` voxel-to-world ``affine``."""
        import nibabel as nib

        affine = np.asarray(affine, dtype=np.float64)
        shape = tuple(int(s) for s in shape)
        if len(shape) == 4 and shape[-1] == 1:
            shape = shape[:3]
        spacing = nib.affines.voxel_sizes(affine)
        direction = affine[:3, :3] / np.where(spacing > 0, spacing, 1.0)
        return cls(shape, spacing, affine[:3, 3].copy(), direction)

    @property
    def affine(self) -> np.ndarray:
        """The ``(4, 4)`` voxel-to-world affine."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * self.spacing
        affine[:3, 3] = self.origin
        return affine


def _as_3d(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape + (1,) if len(shape) == 2 else shape


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return str(value)
    value = np.asarray(value, dtype=np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
    if value.ndim == 2:
        import nibabel as nib

        rows = ", ".join("(" + ", ".join(f"{v:.4g}" for v in row) + ")" for row in value)
        codes = "".join(nib.orientations.aff2axcodes(np.vstack([np.c_[value, np.zeros(3)], [0, 0, 0, 1]])))
        return f"{codes} ({rows})"
    return "(" + ", ".join(f"{v:.6g}" for v in value) + ")" + " mm"


class GridDifference(NamedTuple):
    """Where a grid leaves another: the ``field`` and both values, formatted for a message."""

    field: str
    theirs: str
    ours: str

    @property
    def tolerance(self) -> str:
        """The tolerance of ``field`` in words (empty for ``shape``, which must be equal)."""
        return _TOLERANCE_TEXT[self.field].format(**GEOMETRY_TOLERANCES)


def grid_difference(image: Grid, other: Grid) -> GridDifference | None:
    """The first field (of shape, spacing, direction, origin) in which ``other`` leaves
    ``image``'s grid, or None when they agree within :data:`GEOMETRY_TOLERANCES` (see the
    module docstring)."""
    if _as_3d(image.shape) != _as_3d(other.shape):
        return GridDifference("shape", _fmt(other.shape), _fmt(image.shape))
    tol = GEOMETRY_TOLERANCES
    if np.any(np.abs(other.spacing - image.spacing) > tol["spacing"] * np.maximum(image.spacing, other.spacing)):
        return GridDifference("spacing", _fmt(other.spacing), _fmt(image.spacing))
    # direction before origin: a flipped axis moves the origin too, and is the cause to name
    if np.any(np.abs(other.direction - image.direction) > tol["direction"]):
        return GridDifference("direction", _fmt(other.direction), _fmt(image.direction))
    if np.any(np.abs(other.origin - image.origin) > tol["origin"] * float(np.min(image.spacing))):
        return GridDifference("origin", _fmt(other.origin), _fmt(image.origin))
    return None


def resample_to_grid(array: np.ndarray, affine: np.ndarray, grid: Grid, fill: int = 0) -> np.ndarray:
    """Resample a label map ``(H', W', D')`` with voxel-to-world ``affine`` onto ``grid``
    by nearest neighbour (MONAI's :class:`~monai.transforms.ResampleToMatch`).

    Args:
        array: class indices (integers; NaN passes through to be reported by the value check).
        affine: its ``(4, 4)`` affine, RAS+ like ``grid``.
        grid: the image's grid; ``grid.shape`` is the output shape (2D as one slice).
        fill: the value of voxels outside ``array``'s field of view (0 = background for a
            label, the "unannotated" value for a scribble).

    Returns:
        ``grid.shape`` (3D) float32 array of the resampled values.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    # ResampleToMatch pads with zeros only: shift values by one so that 0 marks "outside".
    # float32 holds class indices exactly; the target is a zero-stride view (only its
    # shape and affine are read), so no image-sized buffer is allocated for it.
    source = MetaTensor(torch.as_tensor(np.asarray(array, dtype=np.float32)[None] + 1.0),
                        affine=torch.as_tensor(np.asarray(affine, dtype=np.float64)))
    target = MetaTensor(torch.zeros(1, dtype=torch.float32).expand(1, *_as_3d(grid.shape)),
                        affine=torch.as_tensor(grid.affine))
    out = ResampleToMatch(mode="nearest", padding_mode="zeros", dtype=torch.float32)(source, target)
    out = np.asarray(out.array[0], dtype=np.float32)
    return np.where(out == 0, np.float32(fill), out - 1.0)
