"""Oracles: who reveals the annotation of a selected slice (the loop's
:class:`~alseg_monai.loop.loop.Oracle` protocol: ``annotate(rounds)``).

:class:`SimulatedOracle` (the default for experiments) reveals the dataset's own masks
or scribbles, synthesising scribbles from masks where a dataset has none.
:class:`HumanOracle` exports each round's picks for an expert (a CSV and, per volume, a
NIfTI mask of the slices to annotate), waits for the expert's label files and imports
them; while they are missing it stops the run with :class:`AnnotationPending`.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import SliceCache
from ..data.scribbles import scribble_from_mask
from ..data.transforms import ResizeSlicesd
from ..data.volume_io import check_label_values, read_array
from ..errors import AlsegError, DataError
from ..utils import broadcast_object, is_main_process
from ..utils.io import atomic_write_bytes, atomic_write_text
from ..utils.seed import derive_seed

__all__ = ["AnnotationPending", "HumanOracle", "SimulatedOracle"]

logger = logging.getLogger(__name__)

Annotations = dict[str, dict[str, np.ndarray]]


class AnnotationPending(AlsegError):
    """A human annotation is awaited: the run stops cleanly and resumes when it is there."""


class SimulatedOracle:
    """Reveal the dataset's annotation of each selected slice.

    Args:
        cache: the slice cache of the training pool.
        label_kind: ``full`` (masks) or ``scribble``.
        num_classes: classes, background included.
        ignore_index: the scribble "unannotated" value.
        synthesize_scribbles: for ``scribble``, draw scribbles from the masks of volumes
            that have no scribble file (:func:`~alseg_monai.data.scribbles.scribble_from_mask`).
        seed: seed of the synthetic scribbles (each slice's stroke depends on its id only).
    """

    def __init__(
        self,
        cache: SliceCache,
        label_kind: str,
        num_classes: int,
        ignore_index: int = 4,
        synthesize_scribbles: bool = True,
        seed: int = 0,
    ) -> None:
        self.cache = cache
        self.label_kind = label_kind
        self.key = "label" if label_kind == "full" else "scribble"
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.synthesize_scribbles = synthesize_scribbles
        self.seed = seed

    def annotate(self, rounds: Sequence[tuple[Sequence[Mapping], Any]]) -> Annotations:
        """Annotations of every round's records (the loop's protocol); see :meth:`reveal`."""
        return self.reveal([record for records, _ in rounds for record in records])

    def reveal(self, records: Sequence[Mapping]) -> Annotations:
        """Annotations of ``records`` that the cache does not already hold (synthetic
        scribbles); checks every slice can be annotated.

        Raises:
            DataError: a selected slice whose volume has no label (nor scribble) to reveal.
        """
        annotations: Annotations = {}
        for record in records:
            arrays = self.cache.slice(record)
            if self.key in arrays:
                annotation = arrays[self.key][0]
            elif self.key == "scribble" and "label" in arrays and self.synthesize_scribbles:
                annotation = scribble_from_mask(
                    arrays["label"][0], self.num_classes, self.ignore_index, seed=derive_seed(self.seed, record["id"])
                )
                annotations[record["id"]] = {"scribble": annotation}
            else:
                source = record.get(self.key) or record.get("image")
                raise DataError(
                    f"{source}: slice {record['id']} was selected but its volume has no {self.key} to reveal; "
                    f"the simulated oracle needs {'masks' if self.key == 'label' else 'scribbles or masks'} "
                    "for every training volume"
                )
            if self.key == "scribble" and not np.any(annotation != self.ignore_index):
                logger.warning(
                    "slice %s: its scribble has no annotated pixel; it is kept but adds no supervision", record["id"]
                )
        return annotations


class HumanOracle:
    """Export picks for an expert and import the expert's label files.

    The export for a round (``request_dir``) holds ``request.csv`` (``volume_file``,
    ``slice_index``, ``id``, ``volume``, ``patient``) and, per volume,
    ``<volume>_to_annotate.nii.gz``: the source image's grid with 1 on the slices to
    annotate. The expert writes, per volume, ``<volume>_label.nii.gz`` (a full label
    volume in the source grid; only the requested slices are read) into
    ``annotation_dir``.

    Args:
        cache: the slice cache of the training pool (for resizing imported labels).
        num_classes: classes, background included.
        label_kind: ``full`` or ``scribble`` (scribbles may use ``ignore_index``).
        ignore_index: the scribble "unannotated" value.
        volumes: volume id -> volume record of the training pool (the request names
            each volume's source file).
        wait: seconds to wait for the expert's files before stopping the run (0: stop
            at once); the run resumes where it stopped when run again.
    """

    def __init__(self, cache: SliceCache, num_classes: int, label_kind: str = "full", ignore_index: int = 4,
                 volumes: Mapping[str, Mapping] | None = None, wait: float = 0.0) -> None:
        self.cache = cache
        self.num_classes = num_classes
        self.key = "label" if label_kind == "full" else "scribble"
        self.ignore_index = ignore_index
        self.volumes = dict(volumes or {})
        self.wait = float(wait)
        self._resize = ResizeSlicesd(("label",), cache.image_size)

    def annotate(self, rounds: Sequence[tuple[Sequence[Mapping], Any]]) -> Annotations:
        """Every round's annotations (the loop's protocol): each round's request is
        exported once, and its files are awaited up to ``wait`` seconds, then loaded.

        Raises:
            AnnotationPending: files are still missing when the wait ends.
        """
        annotations: Annotations = {}
        for records, paths in rounds:
            annotations.update(self._round(list(records), paths))
        return annotations

    def _round(self, records: list[Mapping], paths) -> Annotations:
        if is_main_process() and not (paths.request_dir / "request.csv").is_file():
            self.export(records, self.volumes, paths.request_dir)
        deadline = time.monotonic() + self.wait
        # Rank 0 looks for the expert's files and tells the others, so all ranks stop or go on together.
        while missing := broadcast_object(self.missing(records, paths.annotation_dir) if is_main_process() else None):
            if broadcast_object(time.monotonic() >= deadline):
                raise AnnotationPending(
                    f"waiting for annotations: the slices listed in {paths.request_dir / 'request.csv'} need labels; "
                    f"write {len(missing)} label file(s) such as {missing[0]} (the source image's grid, "
                    f"labels 0..{self.num_classes - 1} on the requested slices) and run the same command again"
                )
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        return self.load(records, paths.annotation_dir)

    def export(self, records: Sequence[Mapping], volumes: Mapping[str, Mapping], request_dir: Path) -> Path:
        """Write the annotation request for ``records``; returns ``request.csv``."""
        import nibabel as nib

        by_volume: dict[str, list[Mapping]] = defaultdict(list)
        for record in records:
            by_volume[record["volume"]].append(record)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["volume_file", "slice_index", "id", "volume", "patient"])
        for volume_id, picks in by_volume.items():
            volume = volumes[volume_id]
            entry = self.cache.volume(volume_id)
            shape = tuple(int(s) for s in entry["spatial_shape"]) + (entry["image"].shape[-1],)
            marker = np.zeros(shape, np.uint8)
            for record in sorted(picks, key=lambda r: r["slice"]):
                marker[..., int(record["slice"])] = 1
                writer.writerow([_source_file(volume), record["slice"], record["id"], volume_id, record["patient"]])
            image = nib.Nifti1Image(marker, np.asarray(entry["affine"]))
            atomic_write_bytes(request_dir / f"{volume_id}_to_annotate.nii.gz", _nifti_bytes(image))
        path = request_dir / "request.csv"
        atomic_write_text(path, buffer.getvalue())
        return path

    def missing(self, records: Sequence[Mapping], annotation_dir: Path) -> list[Path]:
        """Label files the expert has not delivered yet."""
        volumes = dict.fromkeys(r["volume"] for r in records)
        return [p for v in volumes if not (p := annotation_dir / f"{v}_label.nii.gz").is_file()]

    def load(self, records: Sequence[Mapping], annotation_dir: Path) -> Annotations:
        """Read the expert's labels of ``records`` (requested slices only), checked and
        resized to the cache's slice size.

        Raises:
            DataError: a missing file, a shape different from the source image, or
                label values outside the classes; the message names the file.
        """
        by_volume: dict[str, list[Mapping]] = defaultdict(list)
        for record in records:
            by_volume[record["volume"]].append(record)
        annotations: Annotations = {}
        for volume_id, picks in by_volume.items():
            path = annotation_dir / f"{volume_id}_label.nii.gz"
            array, _ = read_array(path)
            entry = self.cache.volume(volume_id)
            expected = tuple(int(s) for s in entry["spatial_shape"]) + (entry["image"].shape[-1],)
            if array.ndim == 4 and array.shape[-1] == 1:
                array = array[..., 0]
            if tuple(array.shape) != expected:
                raise DataError(
                    f"{path}: annotation of shape {tuple(array.shape)}; expected the source image's shape {expected}"
                )
            slices = [int(r["slice"]) for r in picks]
            requested = array[..., slices]
            extra = (self.ignore_index,) if self.key == "scribble" else ()
            check_label_values(requested, path, self.num_classes, extra)
            resized = self._resize({"label": requested.astype(np.uint8)})["label"]
            for position, record in enumerate(picks):
                annotations[record["id"]] = {self.key: resized[..., position]}
        return annotations


def _source_file(volume: Mapping) -> str:
    image = volume.get("image")
    return str(image[0] if isinstance(image, (list, tuple)) else image)


def _nifti_bytes(image) -> bytes:
    """Serialise a nibabel image to gzipped NIfTI bytes (for an atomic write)."""
    import gzip

    return gzip.compress(image.to_bytes(), mtime=0)
