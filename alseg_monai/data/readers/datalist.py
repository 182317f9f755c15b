"""The datalist reader: any NIfTI / NRRD / MHA data listed in a MONAI decathlon-style
JSON file, read in place.

This is the route for a user's own 3D data (paper section 3: slices of any volumes).
The JSON follows the Medical Segmentation Decathlon ``dataset.json`` that MONAI's
``load_decathlon_datalist`` reads::

    {
      "labels": {"0": "background", "1": "liver"},              optional
      "training":   [{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz",
                      "scribble": "scribblesTr/a.nii.gz", "patient": "p01"}, ...],
      "validation": [{"image": ..., "label": ...}, ...],
      "test":       ["imagesTs/c.nii.gz", {"image": "imagesTs/d.nii.gz"}, ...]
    }

``root`` is the JSON file, or a folder holding ``dataset.json``, ``datalist.json`` or a
single ``*.json``. Relative paths resolve against ``base_dir`` (default: the JSON's
folder). At least one of the three lists must be present; an item is a dict with one
``image`` path and optional ``label``, ``scribble`` and ``patient``, or a bare image
path; other keys are ignored. Files: ``.nii`` / ``.nii.gz`` (nibabel), ``.nrrd`` /
``.nhdr`` / ``.mha`` / ``.mhd`` / ``.dcm`` (SimpleITK), or a folder holding one DICOM
series (read in slice-position order); 2D files are one-slice volumes. Headers are
checked here: a label or scribble must lie on its image's voxel grid (shape, spacing,
origin, direction, see :mod:`~alseg_monai.data.geometry`).

Records: one volume per item, format ``nifti``, in natural order of volume id = the
image file name without its suffix (``a`` for ``a.nii.gz``), which must be unique; patient = the item's
``patient``, or the volume id. The list an item comes from is its patient's subset
(``training``, ``validation``, ``test``), and a patient may be in one list only.
``split_dataset(index, method="layout")`` takes ``test`` as the test set and splits the
rest into train / val by ``fractions``; to keep the JSON's own validation list instead,
pass it: ``lists={"val": [p for p, s in index.subsets.items() if s == "validation"]}``.

Options:
    ``num_classes``: classes including background. Default None = the number of entries
        of the JSON's ``labels``; a :class:`ConfigError` when neither is given (a wrong
        guess would only surface as label errors later), or when they disagree. The
        bundle always passes its own ``num_classes`` (one setting, e.g. ``--num_classes
        4``), so a JSON without ``labels`` needs nothing else; the label files are checked
        against it when loaded (a value outside the classes is a :class:`DataError`
        naming the file and its values; the bundle's run also refuses, without
        ``labels``, a count above the highest class the files hold).
    ``ignore_index``: the scribbles' "unannotated" value; default None = ``num_classes``
        (the WSL4MIS convention: 4 for ACDC's 4 classes). It may not be a class.
    ``base_dir``: the folder relative paths resolve against.
    ``channels``: 1; the ``nifti`` loader reads single-channel volumes, so other values
        are a :class:`ConfigError`.
    ``resample_labels``: False; True resamples a label or scribble that is not on its
        image's grid onto it (nearest neighbour; outside its field of view: background
        for a label, ``ignore_index`` for a scribble) instead of refusing it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import ConfigError, DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from .common import check_root, check_same_grid, volume_record

__all__ = ["read_datalist"]

# Datalist key -> the subset its patients get.
DATALIST_KEYS = ("training", "validation", "test")
_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
_JSON_NAMES = ("dataset.json", "datalist.json")


def _json_file(root: Path) -> Path:
    if not root.exists():
        raise DataError(f"{root}: datalist JSON not found; dataset_dir of a datalist is the JSON file or its folder")
    if root.is_file():
        return root
    for name in _JSON_NAMES:
        if (root / name).is_file():
            return root / name
    candidates = sorted(root.glob("*.json"))
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(
        f"{root}: no {' or '.join(_JSON_NAMES)}, and {len(candidates)} other .json files "
        f"{[p.name for p in candidates][:5]}; pass the datalist JSON file itself as root"
    )


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the datalist JSON ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or not any(key in data for key in DATALIST_KEYS):
        raise DataError(f"{path}: expected a JSON object with lists {list(DATALIST_KEYS)} (at least one)")
    for key in DATALIST_KEYS:
        if key in data and not isinstance(data[key], list):
            raise DataError(f"{path}: '{key}' is a {type(data[key]).__name__}; expected a list of items")
    return data


def _resolve_classes(data: dict, path: Path, num_classes: int | None, ignore_index: int | None) -> tuple[int, int]:
    labels = data.get("labels")
    declared = len(labels) if isinstance(labels, dict) and labels else None
    if num_classes is None:
        if declared is None:
            raise ConfigError(
                f"datalist {path}: num_classes is not set and the JSON has no 'labels'; "
                "pass num_classes=<number of classes including background> (the bundle passes its num_classes: "
                "--num_classes N)"
            )
        num_classes = declared
    elif declared is not None and declared != int(num_classes):
        raise ConfigError(
            f"num_classes={num_classes}, but 'labels' in {path} names {declared} classes: {labels}; set "
            f"num_classes to {declared} (--num_classes {declared} or the data config), or correct 'labels'"
        )
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ConfigError(f"num_classes={num_classes}; expected at least 2 (background and one structure)")
    ignore_index = num_classes if ignore_index is None else int(ignore_index)
    if 0 <= ignore_index < num_classes:
        raise ConfigError(
            f"ignore_index={ignore_index} is a class (0..{num_classes - 1}); expected a value outside them"
        )
    return num_classes, ignore_index


def _item_fields(item, path: Path, where: str) -> dict:
    """``{"image", "label", "scribble", "patient"}`` of one datalist item, checked."""
    if isinstance(item, str):
        item = {"image": item}
    if not isinstance(item, dict):
        raise DataError(f"{path}: {where} is {item!r}; expected {{\"image\": <path>, ...}} or an image path")
    fields = {}
    for key in ("image", "label", "scribble"):
        value = item.get(key)
        if key == "image" and value is None:
            raise DataError(f"{path}: {where} has no 'image'; expected {{\"image\": <path>, \"label\": <path>, ...}}")
        if value is not None and (not isinstance(value, str) or not value):
            raise DataError(
                f"{path}: {where} has {key} {value!r}; expected one file path or DICOM series folder (images of "
                "several files, such as one per channel, are not supported)"
            )
        fields[key] = value
    patient = item.get("patient")
    if patient is not None and not isinstance(patient, (str, int)):
        raise DataError(f"{path}: {where} has patient {patient!r}; expected a string")
    fields["patient"] = None if patient is None else str(patient)
    return fields


def _volume_id(path: str | Path) -> str:
    """A file name without its image suffix: ``a.nii.gz`` -> ``a``."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_datalist(
    root: str | Path,
    base_dir: str | Path | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    channels: int = 1,
    resample_labels: bool = False,
) -> DatasetIndex:
    """Index the volumes listed in a decathlon-style JSON (see the module docstring).

    Args:
        root: the JSON file, or its folder.
        base_dir: the folder relative paths resolve against (default: the JSON's folder).
        num_classes: classes including background (default: from the JSON's ``labels``).
        ignore_index: the scribbles' unannotated value (default: ``num_classes``).
        channels: image channels; 1.
        resample_labels: resample labels and scribbles that are not on their image's
            grid onto it (nearest neighbour) instead of refusing them.

    Raises:
        ConfigError: ``num_classes`` neither given nor in the JSON, or in conflict with
            it; ``ignore_index`` a class; ``channels`` other than 1.
        DataError: an unreadable or malformed JSON, a bad item, a missing or unreadable
            file, a label or scribble not on its image's grid (shape, spacing, origin,
            direction), two items with one volume id, or a patient in two lists.
    """
    path = _json_file(Path(root).expanduser())
    if int(channels) != 1:
        raise ConfigError(f"channels={channels}; the datalist reader loads single-channel volumes (channels=1)")
    data = _load_json(path)
    num_classes, ignore_index = _resolve_classes(data, path, num_classes, ignore_index)
    base = check_root(base_dir, "datalist base_dir") if base_dir is not None else path.parent
    volumes, subsets = [], {}
    where_of: dict[str, str] = {}
    for key in DATALIST_KEYS:
        for i, item in enumerate(data.get(key, [])):
            where = f"{key}[{i}]"
            fields = _item_fields(item, path, where)
            files = {k: (base / Path(v).expanduser() if v else None) for k, v in fields.items() if k != "patient"}
            vid = _volume_id(files["image"])
            if vid in where_of:
                raise DataError(
                    f"{path}: {where} and {where_of[vid]} both have an image named {vid}; "
                    "expected unique image file names (they are the volume ids)"
                )
            where_of[vid] = where
            patient = fields["patient"] or vid
            if subsets.get(patient, key) != key:
                raise DataError(
                    f"{path}: patient {patient} ({where}) is also in '{subsets[patient]}'; a patient is in one list"
                )
            subsets[patient] = key
            shape, resample = check_same_grid(files["image"], files["label"], files["scribble"], resample_labels,
                                              ignore_index)
            volume = volume_record(
                vid, patient, "nifti", *(str(files[k]) if files[k] else None for k in ("image", "label", "scribble")),
                num_slices=shape[2] if len(shape) == 3 else 1, spatial_shape=shape[:2],
                **({"resample": resample} if resample else {}),
            )
            volumes.append(volume)
    volumes.sort(key=lambda v: natural_key(v["id"]))
    slices = [s for volume in volumes for s in make_slice_records(volume)]
    labels = data.get("labels") if isinstance(data.get("labels"), dict) else {}
    names = tuple(str(labels.get(str(k), f"class_{k}")) for k in range(1, num_classes)) if labels else ()
    return DatasetIndex("datalist", str(path), volumes, slices, num_classes, 1, ignore_index, subsets, labels=names)
