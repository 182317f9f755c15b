"""Train / validation / test splits, always by patient.

A patient is never in two splits, so no slice of a test patient informs selection or
training.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .records import DatasetIndex

__all__ = ["split_dataset"]

logger = logging.getLogger(__name__)
SPLIT_NAMES = ("train", "val", "test")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_TEST_SUBSETS = {"testing", "test"}
_VAL_SUBSETS = {"validation", "val"}


def _patient_number(patient: str) -> int | None:
    digits = re.findall(r"\d+", patient)
    return int(digits[-1]) if digits else None


def resolve_patient_list(index: DatasetIndex, spec: str | Sequence[str], name: str) -> list[str]:
    """Patients named by ``spec``.

    ``spec`` is a list whose items are patient ids, volume ids (mapped to their
    patient), or numeric ranges ``"81-100"`` (patients whose trailing number lies in the
    range, inclusive); or a path to a text file with one such item per line (the
    WSL4MIS ``*.list`` files; slice names such as ``patient001_frame01_slice_3`` map to
    their patient too).

    Raises:
        ConfigError: an item names no patient of the dataset.
    """
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"split list {name!r}: file {path} not found")
        items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        items = [str(item) for item in spec]
    patients = index.patients
    volume_patient = {v["volume"]: v["patient"] for v in index.volumes}
    slice_patient = {s["id"]: s["patient"] for s in index.slices}
    chosen: list[str] = []
    for item in items:
        match = _RANGE.match(item)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            found = [p for p in patients if (n := _patient_number(p)) is not None and low <= n <= high]
        elif item in volume_patient or item in slice_patient:
            found = [volume_patient.get(item) or slice_patient[item]]
        elif item in patients:
            found = [item]
        else:
            stem = re.sub(r"(_slice_\d+|\.h5)$", "", item)
            found = [volume_patient[stem]] if stem in volume_patient else []
        if not found:
            raise ConfigError(f"split list {name!r}: {item!r} names no patient, volume or range of the dataset")
        chosen.extend(found)
    return list(dict.fromkeys(chosen))


def split_patients(patients: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[str]]:
    """Shuffle ``patients`` with ``seed`` and cut them by ``fractions`` (normalised to sum 1).

    Every split with a positive fraction gets at least one patient when there are
    enough; the remainder of the rounding goes to the first split.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or np.any(fractions < 0) or fractions.sum() <= 0:
        raise ConfigError(f"split fractions {fractions.tolist()}; expected non-negative numbers with a positive sum")
    fractions = fractions / fractions.sum()
    order = list(np.random.default_rng(seed).permutation(len(patients)))
    counts = np.floor(fractions * len(patients)).astype(int)
    for i in np.flatnonzero((fractions > 0) & (counts == 0)):
        if counts.sum() < len(patients):
            counts[i] = 1
    counts[0] += len(patients) - counts.sum()
    cuts = np.cumsum(counts)[:-1]
    return [[patients[j] for j in part] for part in np.split(np.asarray(order, dtype=int), cuts)]


def split_dataset(
    index: DatasetIndex,
    method: str = "random",
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    lists: Mapping[str, str | Sequence[str]] | None = None,
) -> dict[str, DatasetIndex]:
    """Split ``index`` by patient into ``train`` / ``val`` / ``test``.

    Args:
        method: ``random`` (patients shuffled with ``seed``, cut by ``fractions``),
            ``layout`` (test = patients in a ``testing`` / ``test`` subset of the layout;
            val = ``lists["val"]`` when given, else the layout's ``validation`` / ``val``
            subset, else a random part of the rest by the first two ``fractions``), or ``lists``
            (explicit ``lists`` for each split, see :func:`resolve_patient_list`; unlisted patients
            are left out).
        fractions: (train, val, test) fractions for ``random``.
        seed: the shuffling seed.
        lists: split name -> patient list spec.

    Raises:
        ConfigError: unknown method or split name, a patient listed in two splits, a
            ``layout`` split on a dataset whose layout has no test folder, or no patient
            left for training.
        DataError: a ``layout`` split of a datalist whose ``training`` list is empty.
    """
    patients = index.patients
    lists = dict(lists or {})
    unknown = sorted(set(lists) - set(SPLIT_NAMES))
    if unknown:
        raise ConfigError(f"split lists {unknown} unknown; expected names among {list(SPLIT_NAMES)}")
    if method == "random":
        parts = dict(zip(SPLIT_NAMES, split_patients(patients, fractions, seed)))
    elif method == "layout":
        test = [p for p in patients if index.subsets.get(p, "").lower() in _TEST_SUBSETS]
        if not test:
            raise ConfigError(
                f"{index.root}: split method 'layout' needs a 'testing' (or 'test') folder of patients; "
                "use method 'random' or 'lists'"
            )
        rest = [p for p in patients if p not in set(test)]
        layout_val = [p for p in rest if index.subsets.get(p, "").lower() in _VAL_SUBSETS]
        if "val" in lists or layout_val:
            val = resolve_patient_list(index, lists["val"], "val") if "val" in lists else layout_val
            parts = {"train": [p for p in rest if p not in set(val)], "val": val, "test": test}
        else:
            train, val = split_patients(rest, tuple(fractions)[:2], seed)
            parts = {"train": train, "val": val, "test": test}
    elif method == "lists":
        missing = [n for n in ("train", "test") if n not in lists]
        if missing:
            raise ConfigError(
                f"split method 'lists' needs lists for {missing}; give them under split#lists (patient ids, "
                "ranges such as '1-80', or a list file)"
            )
        parts = {name: resolve_patient_list(index, lists[name], name) for name in SPLIT_NAMES if name in lists}
        parts.setdefault("val", [])
        left_out = len(patients) - len({p for ps in parts.values() for p in ps})
        if left_out:
            logger.info("%d patients are in no split list and are left out", left_out)
    else:
        raise ConfigError(f"split method {method!r} unknown; expected 'random', 'layout' or 'lists'")
    _check_disjoint(parts)
    _check_training_patients(index, method, parts)
    return {name: index.subset(parts[name]) for name in SPLIT_NAMES}


def _check_training_patients(index: DatasetIndex, method: str, parts: Mapping[str, Sequence[str]]) -> None:
    """Refuse a split with no training patient, naming where the training data should be
    (otherwise it surfaces later as a budget of a 0-slice training pool)."""
    if parts["train"]:
        return
    counts = {name: len(parts[name]) for name in ("val", "test")}
    listed = {key: sum(1 for s in index.subsets.values() if s == key) for key in ("training", "validation", "test")}
    if method == "layout" and index.kind == "datalist" and not listed["training"]:
        raise DataError(
            f"{index.root}: the datalist's 'training' list has no entries (patients listed: {listed['validation']} "
            f"under 'validation', {listed['test']} under 'test'); add the volumes to select from "
            "and train on under 'training': [{\"image\": ..., \"label\": ...}, ...]"
        )
    if method == "layout":
        raise ConfigError(
            f"{index.root}: split method 'layout' leaves no training patient: all {len(index.patients)} are in "
            f"the validation ({counts['val']}) or test ({counts['test']}) folders or lists; add training "
            "patients, or use split method 'random'"
        )
    raise ConfigError(
        f"split: no training patient (method {method!r}: {counts['val']} validation, {counts['test']} test, "
        f"{len(index.patients)} patients in the dataset); give the 'train' split patients (split#lists#train) "
        "or a positive first fraction (split#fractions)"
    )


def _check_disjoint(parts: Mapping[str, Sequence[str]]) -> None:
    seen: dict[str, str] = {}
    for name, members in parts.items():
        for patient in members:
            if patient in seen and seen[patient] != name:
                raise ConfigError(
                    f"patient {patient!r} is in both the {seen[patient]!r} and {name!r} splits; remove it from one "
                    "of the split lists"
                )
            seen[patient] = name
