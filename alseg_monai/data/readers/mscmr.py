"""The MS-CMR reader: MSCMRseg late-gadolinium-enhanced (LGE) cardiac MR with the
CycleMix scribbles, read in place.

MSCMRseg is the MICCAI 2019 multi-sequence cardiac MR segmentation challenge (Zhuang,
TPAMI 2019; 45 patients); the paper (section 4, "Datasets") uses its LGE images with
the scribbles released with CycleMix (Zhang and Zhuang, CVPR 2022).

Facts, checked in the public CycleMix repository (github.com/BWGZK/CycleMix):
    * ``MSCMR_dataset/{train,val,TestSet}/images/subject<N>_DE.nii.gz`` ("DE", delayed
      enhancement, is the LGE sequence); ``val/labels`` and ``TestSet/labels`` hold
      ``subject<N>_DE_manual.nii.gz``; ``train/labels`` holds scribbles
      ``subject<N>_DE_scribble.nii.gz`` (no manual label for training subjects); more
      scribbles lie in ``MSCMR_scribbles/subject<N>_DE_scribble.nii.gz`` (file listing).
    * CycleMix's labels are class indices 0 bg, 1 RV, 2 Myo, 3 LV (its Dice terms in
      ``models/segmentation.py`` score 1 as RV, 2 as Myo, 3 as LV) and its scribbles use
      4 for "unannotated": ``engines.py`` one-hot-encodes 5 values and its
      cross-entropy keeps channels 0-3 only, so pixels of value 4 carry no loss.
    * The challenge's own release stores the raw values 200 = LV myocardium, 500 = LV
      blood pool, 600 = RV blood pool (challenge data description,
      zmiclab.github.io/zxh/0/mscmrseg19/data.html; not checked against files here). The
      default ``label_map`` {200: 2, 500: 3, 600: 1} maps them to the classes above and
      leaves CycleMix's 0-4 untouched, so both forms load.

Layout: every NIfTI (``.nii`` / ``.nii.gz``) under ``root`` (and ``scribble_root``, for
scribbles only) is classified by its name, case-insensitively, wherever it sits::

    <subject>_<sequence>.nii.gz                          image
    <subject>_<sequence>_{manual,gt,label}.nii.gz        manual label
    <subject>_<sequence>_{scribble,scribbles}.nii.gz     scribble

with ``<subject>`` = ``subject<N>`` (CycleMix) or ``patient<N>`` (challenge release) and
``<sequence>`` one of ``sequences`` (default ``DE`` and ``LGE``). Files of other
sequences (``C0``, ``T2``) are skipped with an info log, names matching no pattern with
a warning. One volume per patient: volume id = the image name without suffix
(``subject7_DE``), patient = ``<subject>`` (``subject7``). A subject with an image and
no label is kept unlabelled; a label or scribble without an image, or two files of one
role for a subject, is a :class:`DataError`. A folder named ``train`` / ``training`` /
``TrainSet``, ``val`` / ``validation`` / ``ValSet`` or ``test`` / ``testing`` /
``TestSet`` above an image sets its patient's subset to ``training``, ``validation``
or ``testing`` (``split_dataset(method="layout")`` takes ``testing`` as the test set).

Every label and scribble must lie on its image's voxel grid (shape, spacing, origin,
direction; checked from the headers, see :mod:`~alseg_monai.data.geometry`).

Options: ``num_classes=4``, ``ignore_index=4``, ``label_map`` (stored value -> class;
``{}`` to disable), ``sequences=("DE", "LGE")``, ``scribble_root=None``,
``resample_labels=False`` (True: resample labels and scribbles that are not on their
image's grid onto it, nearest neighbour). Intensities are
z-scored per volume by default (``SliceCache``); the 1.37 mm resampling and 212 x 212
crop of CycleMix are not applied (slices are resized to ``image_size``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ...errors import ConfigError, DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from .common import check_root, check_same_grid, volume_record

__all__ = ["read_mscmr"]

logger = logging.getLogger(__name__)

# Raw MSCMRseg values -> project classes (0 bg, 1 RV, 2 Myo, 3 LV).
MSCMR_LABEL_MAP: dict[int, int] = {200: 2, 500: 3, 600: 1}

_NAME = re.compile(
    r"^(?P<subject>(?:subject|patient)\d+)_(?P<sequence>[a-z0-9]+)"
    r"(?:_(?P<role>manual|gt|label|scribbles?))?\.nii(?:\.gz)?$",
    re.IGNORECASE,
)
_ROLES = {
    None: "image", "manual": "label", "gt": "label", "label": "label", "scribble": "scribble", "scribbles": "scribble",
}
_SUBSETS = {
    "train": "training", "training": "training", "trainset": "training",
    "val": "validation", "validation": "validation", "valset": "validation",
    "test": "testing", "testing": "testing", "testset": "testing",
}


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz"))
         and not p.name.startswith(".")),
        key=natural_key,
    )


def _check_label_map(label_map: Mapping, num_classes: int) -> dict[int, int]:
    try:
        mapping = {int(k): int(v) for k, v in label_map.items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"label_map={label_map!r}; expected a mapping of stored integer values to classes") from err
    bad = {k: v for k, v in mapping.items() if not 0 <= v < num_classes}
    if bad:
        raise ConfigError(
            f"label_map targets {bad} outside the classes 0..{num_classes - 1}; map stored values to classes "
            "0..num_classes-1, or raise num_classes"
        )
    return mapping


def _subset_of(path: Path, root: Path) -> str | None:
    """The subset named by the nearest split folder above ``path`` (within ``root``)."""
    for part in reversed(path.relative_to(root).parts[:-1]):
        if part.lower() in _SUBSETS:
            return _SUBSETS[part.lower()]
    return None


def _classify(files: Iterable[Path], sequences: set[str], roles: set[str]) -> dict[str, dict[str, Path]]:
    """``{subject: {role: path}}`` for the files named ``<subject>_<sequence>[_<role>]``."""
    found: dict[str, dict[str, Path]] = {}
    unknown, other_sequences = [], []
    for path in files:
        match = _NAME.match(path.name)
        if match is None:
            unknown.append(path)
            continue
        if match["sequence"].upper() not in sequences:
            other_sequences.append(path)
            continue
        role = _ROLES[match["role"].lower() if match["role"] else None]
        if role not in roles:
            unknown.append(path)
            continue
        subject = match["subject"].lower()
        entry = found.setdefault(subject, {})
        if role in entry:
            raise DataError(f"{path}: a second {role} for {subject} (the first is {entry[role]}); keep one")
        entry[role] = path
    if other_sequences:
        logger.info("skipping %d NIfTI files of sequences other than %s, e.g. %s",
                    len(other_sequences), sorted(sequences), other_sequences[0])
    if unknown:
        logger.warning("skipping %d NIfTI files whose names are not <subject>_<sequence>[_manual|_scribble], e.g. %s",
                       len(unknown), unknown[0])
    return found


def read_mscmr(
    root: str | Path,
    num_classes: int = 4,
    ignore_index: int = 4,
    label_map: Mapping[int, int] | None = None,
    sequences: Sequence[str] = ("DE", "LGE"),
    scribble_root: str | Path | None = None,
    resample_labels: bool = False,
) -> DatasetIndex:
    """Index an MSCMRseg LGE folder (see the module docstring).

    Args:
        root: the dataset folder (e.g. CycleMix's ``MSCMR_dataset``, or the folder above it).
        num_classes: 4 (bg, RV, Myo, LV).
        ignore_index: the scribbles' unannotated value (4 in CycleMix).
        label_map: stored label value -> class, applied to labels and scribbles when
            loading; default :data:`MSCMR_LABEL_MAP` (200 -> 2, 500 -> 3, 600 -> 1).
        sequences: the sequence names that mark LGE images.
        scribble_root: another folder searched for scribble files.
        resample_labels: resample a label or scribble that is not on its image's voxel
            grid onto it (nearest neighbour) instead of refusing it.

    Raises:
        ConfigError: a ``label_map`` target outside the classes.
        DataError: a label or scribble without its image, two files of one role for a
            subject, an unreadable header, or a label or scribble not on its image's
            grid (shape, spacing, origin, direction).
    """
    root = check_root(root, "mscmr")
    mapping = _check_label_map(MSCMR_LABEL_MAP if label_map is None else label_map, num_classes)
    wanted = {s.upper() for s in ([sequences] if isinstance(sequences, str) else sequences)}
    found = _classify(_nifti_files(root), wanted, {"image", "label", "scribble"})
    if scribble_root is not None:
        extra = _classify(_nifti_files(check_root(scribble_root, "mscmr scribble")), wanted, {"scribble"})
        for subject, entry in extra.items():
            if "scribble" in found.get(subject, {}):
                raise DataError(
                    f"{entry['scribble']}: a second scribble for {subject} (the first is "
                    f"{found[subject]['scribble']}); keep one"
                )
            found.setdefault(subject, {}).update(entry)
    volumes, slices, subsets = [], [], {}
    for subject in sorted(found, key=natural_key):
        entry = found[subject]
        if "image" not in entry:
            role = "label" if "label" in entry else "scribble"
            raise DataError(
                f"{entry[role]}: a {role} without an image; expected {subject}_<sequence>.nii.gz under {root}"
            )
        image, label, scribble = entry["image"], entry.get("label"), entry.get("scribble")
        shape, resample = check_same_grid(image, label, scribble, resample_labels, ignore_index)
        volume = volume_record(
            re.sub(r"\.nii(\.gz)?$", "", image.name, flags=re.IGNORECASE), subject, "nifti", str(image),
            str(label) if label else None, str(scribble) if scribble else None,
            num_slices=shape[2] if len(shape) == 3 else 1, spatial_shape=shape[:2], label_map=mapping,
            **({"resample": resample} if resample else {}),
        )
        volumes.append(volume)
        slices.extend(make_slice_records(volume))
        subset = _subset_of(image, root)
        if subset is not None:
            subsets[subject] = subset
    return DatasetIndex("mscmr", str(root), volumes, slices, num_classes, 1, ignore_index, subsets)
