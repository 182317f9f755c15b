"""Slice and volume records, and the :class:`DatasetIndex` that holds them.

A record is a plain JSON-serialisable dict (see ``docs/design.md``). Slice identity is
explicit: every slice record carries its ``patient``, ``volume`` and ``slice`` (z index),
and a stable ``id`` built once by :func:`slice_id`; nothing parses ids back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["DatasetIndex", "natural_key"]

# Foreground class names (labels 1..K-1) of each dataset kind.
CLASS_NAMES = {
    "acdc": ("RV", "Myo", "LV"),
    "wsl4mis_h5": ("RV", "Myo", "LV"),
    "mscmr": ("RV", "Myo", "LV"),
    "chaos": ("liver",),
    "davis": ("object",),
}


def class_names(kind: str, num_classes: int) -> tuple[str, ...]:
    """Foreground class names of a dataset kind (``class_<k>`` when unknown)."""
    names = CLASS_NAMES.get(kind)
    return names if names and len(names) == num_classes - 1 else tuple(f"class_{k}" for k in range(1, num_classes))


def slice_id(volume: str, z: int) -> str:
    """The stable id of slice ``z`` of ``volume``: ``f"{volume}_slice_{z}"``."""
    return f"{volume}_slice_{int(z)}"


def natural_key(text: str | Path) -> list[Any]:
    """Sort key that orders embedded integers numerically (``slice_2`` before ``slice_10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def make_slice_records(volume: dict, slice_sources: Sequence[dict] | None = None) -> list[dict]:
    """Slice records ``0 .. volume["num_slices"] - 1`` of ``volume``.

    Args:
        volume: a volume record.
        slice_sources: per slice, the ``image`` / ``label`` / ``scribble`` sources when the
            volume is stored one file per slice; by default every slice points at the
            volume's own files.
    """
    count = int(volume["num_slices"])
    if slice_sources is not None and len(slice_sources) != count:
        raise DataError(
            f"volume {volume['id']}: {len(slice_sources)} per-slice sources for {count} slices"
        )
    records = []
    for z in range(count):
        sources = (
            slice_sources[z]
            if slice_sources is not None
            else {key: volume.get(key) for key in ("image", "label", "scribble")}
        )
        records.append(
            {
                "id": slice_id(volume["volume"], z),
                "patient": volume["patient"],
                "volume": volume["volume"],
                "slice": z,
                "image": sources.get("image"),
                "label": sources.get("label"),
                "scribble": sources.get("scribble"),
                "format": volume["format"],
            }
        )
    return records


@dataclass
class DatasetIndex:
    """Every slice and volume record found under a dataset root.

    Attributes:
        kind: the reader that produced it (``acdc``, ``wsl4mis_h5``, ...).
        root: the dataset root.
        volumes: volume records, in a deterministic (natural) order.
        slices: slice records, grouped by volume in the same order, z ascending.
        num_classes: number of segmentation classes, background included.
        channels: image channels (1, or 3 for DAVIS).
        ignore_index: the scribble value meaning "unannotated".
        subsets: patient -> subset name, where the layout defines one (e.g. ACDC
            ``training`` / ``testing`` folders, WSL4MIS split lists); empty otherwise.
        options: the reader options, kept for loading (e.g. intensity settings).
        labels: names of the foreground classes 1..K-1 where the layout names them (a
            datalist's ``labels``); otherwise the dataset kind's (:data:`CLASS_NAMES`).
    """

    kind: str
    root: str
    volumes: list[dict]
    slices: list[dict]
    num_classes: int
    channels: int = 1
    ignore_index: int = 4
    subsets: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_unique("volume", [v["id"] for v in self.volumes])
        self._check_unique("slice", [s["id"] for s in self.slices])

    def _check_unique(self, what: str, ids: list[str]) -> None:
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise DataError(
                f"{self.root}: duplicate {what} ids {duplicates[:5]}"
                f"{' ...' if len(duplicates) > 5 else ''}; every {what} id must be unique"
            )

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the foreground classes 1..K-1."""
        if len(self.labels) == self.num_classes - 1:
            return tuple(self.labels)
        return class_names(self.kind, self.num_classes)

    @property
    def patients(self) -> list[str]:
        """Patient ids in first-seen order."""
        return list(dict.fromkeys(v["patient"] for v in self.volumes))

    def subset(self, patients: Iterable[str]) -> DatasetIndex:
        """The records of ``patients`` only (same settings)."""
        keep = set(patients)
        return DatasetIndex(
            kind=self.kind,
            root=self.root,
            volumes=[v for v in self.volumes if v["patient"] in keep],
            slices=[s for s in self.slices if s["patient"] in keep],
            num_classes=self.num_classes,
            channels=self.channels,
            ignore_index=self.ignore_index,
            subsets={p: s for p, s in self.subsets.items() if p in keep},
            options=dict(self.options),
            labels=self.labels,
        )

    def summary(self) -> str:
        """A short human-readable description."""
        per_volume = Counter(s["volume"] for s in self.slices)
        counts = sorted(per_volume.values()) or [0]
        lines = [
            f"{self.kind} dataset at {self.root}",
            f"  patients: {len(self.patients)}  volumes: {len(self.volumes)}  slices: {len(self.slices)}",
            f"  slices per volume: min {counts[0]}, max {counts[-1]}",
            f"  classes: {self.num_classes}  channels: {self.channels}",
            f"  with labels: {sum(s['label'] is not None for s in self.slices)} slices, "
            f"with scribbles: {sum(s['scribble'] is not None for s in self.slices)} slices",
        ]
        if self.subsets:
            lines.append(f"  subsets in the layout: {dict(sorted(Counter(self.subsets.values()).items()))}")
        return "\n".join(lines)
