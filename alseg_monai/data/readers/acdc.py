"""The ACDC reader: the official challenge layout, read in place.

Layout (``root`` may be the ``training`` folder, the ``testing`` folder, or their parent;
the folder a patient sits in is recorded as its subset)::

    patientNNN/Info.cfg                       ED: 1 / ES: 12 / Group / Height / NbFrame / Weight
    patientNNN/patientNNN_frameFF.nii.gz      one cardiac phase, (H, W, D)
    patientNNN/patientNNN_frameFF_gt.nii.gz   0 bg, 1 RV, 2 Myo, 3 LV
    patientNNN/patientNNN_frameFF_scribble.nii.gz   optional: 0-3, 4 = unannotated

Scribbles may instead lie under a separate ``scribble_root`` (files named
``patientNNN_frameFF_scribble.nii.gz`` directly in it or in ``patientNNN/``). A volume
is one frame (ED or ES) of a patient.

Every label and scribble must lie on its frame's voxel grid (shape, spacing, origin,
direction; checked from the headers, see :mod:`~alseg_monai.data.geometry`);
``resample_labels=True`` resamples those that do not onto it (nearest neighbour).
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from .common import check_root, check_same_grid, volume_record

__all__ = ["read_acdc"]

_PATIENT_DIR = re.compile(r"^patient\d+$")
_SUFFIXES = (".nii.gz", ".nii")


def read_info_cfg(path: str | Path) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` (``Key: value`` lines) and check it names ED and ES frames.

    Raises:
        DataError: the file is missing, unreadable, or lacks an integer ED / ES.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Info.cfg not found; expected ED and ES frame numbers there")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read Info.cfg ({err}); make the file readable") from err
    info = {}
    for line in lines:
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    for phase in ("ED", "ES"):
        value = info.get(phase, "")
        if not value.isdigit():
            raise DataError(
                f"{path}: missing or invalid '{phase}: <frame number>' line (found {value!r}); expected a line such "
                f"as '{phase}: 1' naming the frame of the {phase} phase"
            )
    return info


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in _SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _patient_dirs(root: Path) -> list[tuple[Path, str | None]]:
    """Patient folders directly under ``root`` or one level down (``training/``, ``testing/``)."""
    found = []
    if _PATIENT_DIR.match(root.name):
        return [(root, None)]
    for child in sorted(root.iterdir(), key=natural_key):
        if child.is_dir() and _PATIENT_DIR.match(child.name):
            found.append((child, None))
        elif child.is_dir():
            found.extend(
                (grandchild, child.name)
                for grandchild in sorted(child.iterdir(), key=natural_key)
                if grandchild.is_dir() and _PATIENT_DIR.match(grandchild.name)
            )
    return found


def read_acdc(
    root: str | Path,
    scribble_root: str | Path | None = None,
    require_labels: bool = False,
    num_classes: int = 4,
    ignore_index: int = 4,
    resample_labels: bool = False,
) -> DatasetIndex:
    """Index an ACDC folder (see the module docstring).

    Args:
        root: the dataset folder.
        scribble_root: optional separate folder of scribble NIfTI files.
        require_labels: raise when a frame has no ``_gt`` file (else it is kept unlabelled).
        num_classes: 4 (bg, RV, Myo, LV).
        ignore_index: the scribbles' unannotated value.
        resample_labels: resample a label or scribble that is not on its image's voxel
            grid onto it (nearest neighbour) instead of refusing it.

    Raises:
        DataError: a missing Info.cfg / frame file, an unreadable header, or a label or
            scribble not on its image's grid (shape, spacing, origin, direction).
    """
    root = check_root(root, "acdc")
    scribble_dir = check_root(scribble_root, "acdc scribble") if scribble_root else None
    volumes, slices, subsets = [], [], {}
    for folder, subset in _patient_dirs(root):
        patient = folder.name
        info = read_info_cfg(folder / "Info.cfg")
        if subset is not None:
            subsets[patient] = subset
        for phase in ("ED", "ES"):
            frame = int(info[phase])
            stem = f"{patient}_frame{frame:02d}"
            image = _find(folder, stem)
            if image is None:
                raise DataError(
                    f"{folder / (stem + '.nii.gz')}: frame file not found ({phase} = {frame} in Info.cfg); add the "
                    f"file, or correct the {phase} line of Info.cfg"
                )
            label = _find(folder, f"{stem}_gt")
            if label is None and require_labels:
                raise DataError(
                    f"{folder / (stem + '_gt.nii.gz')}: label file not found; add it, or set require_labels=false "
                    "to keep the frame unlabelled"
                )
            scribble = _find(folder, f"{stem}_scribble")
            if scribble is None and scribble_dir is not None:
                scribble = _find(scribble_dir, f"{stem}_scribble") or _find(scribble_dir / patient, f"{stem}_scribble")
            shape, resample = check_same_grid(image, label, scribble, resample_labels, ignore_index)
            volume = volume_record(
                stem, patient, "nifti", str(image),
                str(label) if label else None, str(scribble) if scribble else None,
                num_slices=shape[2] if len(shape) == 3 else 1, spatial_shape=shape[:2],
                phase=phase, frame=frame, **({"resample": resample} if resample else {}),
            )
            volumes.append(volume)
            slices.extend(make_slice_records(volume))
    return DatasetIndex("acdc", str(root), volumes, slices, num_classes, 1, ignore_index, subsets)
