"""How a saved label becomes annotated slices.

A client saves a label for a whole volume (``PUT /datastore/label``, tag ``final``): 3D
Slicer and OHIF send the full segmentation, an API client may send zeros outside the
slices it was asked for. The app decides which slices the label *covers*, in this order:

1. ``params`` of the save holds ``"slices": [k, ...]``: exactly those slices (an explicit
   claim; also the way to correct a slice annotated before);
2. else the slices the app served for this volume and that are not labelled yet (its
   *pending* request, recorded by the strategy that served them, however old);
3. else (a label that arrives without any request, e.g. a volume labelled before the
   app ran): ``--conf existing_labels``: ``nonempty`` (default) its non-empty slices,
   ``all`` every slice, ``ignore`` none.

Only the covered slices are read from the file; the app's own copy of the volume's
label (``<state_dir>/labels/<image>.nii.gz``) keeps every slice annotated before, and
is written back to the datastore as the ``final`` label, so the viewer shows all
annotated slices of the volume. An empty covered slice is an annotation too (the
annotator saw nothing of the classes there). The registry then lists the covered slices
as annotated: training uses exactly these, and no strategy suggests them again.

A label is processed once: the registry remembers the file's (mtime, size) stamp.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from .registry import SliceRegistry
from .volumes import VolumeCache, merged_label_path, nonempty_slices, read_label

logger = logging.getLogger(__name__)

FINAL_TAG = "final"
SOURCES = ("params", "request", "existing")


def _stamp(path: str) -> list[int]:
    stat = os.stat(path)
    return [int(stat.st_mtime_ns), int(stat.st_size)]


def _explicit_slices(info: dict) -> list[int] | None:
    slices = info.get("slices") if isinstance(info, dict) else None
    if slices is None:
        return None
    if isinstance(slices, str):
        slices = [s for s in slices.replace(",", " ").split() if s]
    return [int(s) for s in slices]


def _write_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(array, dtype=np.uint8), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nii.gz", dir=path.parent)
    os.close(fd)
    try:
        nib.save(image, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sync_labels(datastore, config, registry: SliceRegistry, cache: VolumeCache,
                image_ids=None, strict: bool = False) -> dict[str, dict]:
    """Process every ``final`` label of the datastore (or of ``image_ids``) saved since the
    app last looked; returns ``{image_id: {"covered": [...], "annotated": [...], "source": ...}}``
    for the labels processed now.

    A label that cannot be used (shape other than its image's, classes outside
    ``0 .. num_classes - 1``, explicit slices outside the volume) annotates nothing; the
    error is kept in the registry (``label_error``) and the datastore's label is put back
    to the app's merged label when there is one. With ``strict`` it is raised afterwards
    (as a ``ValueError``), so the client that saved it hears why.
    """
    done: dict[str, dict] = {}
    errors: list[str] = []
    ids = list(image_ids) if image_ids is not None else datastore.get_labeled_images(FINAL_TAG)
    with registry.update() as data:
        for image_id in ids:
            label_path = datastore.get_label_uri(image_id, FINAL_TAG)
            if not label_path or not os.path.isfile(label_path):
                continue
            entry = data["images"].get(image_id, {})
            if entry.get("label_stamp") == _stamp(label_path):
                continue
            try:
                done[image_id] = _process(datastore, config, registry, cache, data, image_id, label_path)
                registry.entry(data, image_id).pop("label_error", None)
            except Exception as err:  # one bad label must not block the others
                logger.warning("alseg: label of %s not used: %s", image_id, err)
                errors.append(f"{image_id}: {err}")
                entry = registry.entry(data, image_id)
                entry["label_error"] = str(err)
                merged_path = merged_label_path(config.labels_dir, image_id)
                if merged_path.is_file():
                    _save_to_datastore(datastore, image_id, merged_path, {"alseg_restored": True})
                entry["label_stamp"] = _stamp(datastore.get_label_uri(image_id, FINAL_TAG))
    for image_id in done:
        publish(datastore, registry, cache.load(image_id, datastore.get_image_uri(image_id)))
    if strict and errors:
        raise ValueError("; ".join(errors))
    return done


def publish(datastore, registry: SliceRegistry, volume) -> None:
    """Copy the volume's pending and annotated slices into its datastore image info
    (``GET /datastore/image/info?image=<id>``), where a viewer plugin or script finds the
    slices to show without asking a strategy again: ``alseg_pending_slices``,
    ``alseg_pending_positions`` (RAS mm of their centres) and ``alseg_annotated_slices``."""
    data = registry.read()
    pending = registry.pending(data).get(volume.image_id, [])
    info = {"alseg_pending_slices": pending, "alseg_pending_positions": volume.slice_positions(pending),
            "alseg_annotated_slices": registry.annotated(data).get(volume.image_id, [])}
    try:
        datastore.update_image_info(volume.image_id, info)
    except Exception as err:  # a read-only datastore still serves the answer itself
        logger.warning("alseg: cannot update the image info of %s: %s", volume.image_id, err)


def _save_to_datastore(datastore, image_id: str, path: Path, info: dict) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".nii.gz")
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        datastore.save_label(image_id, tmp, FINAL_TAG, info)
    finally:
        os.unlink(tmp)


def _process(datastore, config, registry, cache, data, image_id, label_path) -> dict:
    volume = cache.load(image_id, datastore.get_image_uri(image_id))
    label = read_label(label_path, volume.shape)
    if label.min() < 0 or label.max() >= config.num_classes:
        raise ValueError(f"label of {image_id}: classes {int(label.min())}..{int(label.max())}, expected "
                         f"0..{config.num_classes - 1}")
    info = datastore.get_label_info(image_id, FINAL_TAG) or {}
    entry = registry.entry(data, image_id, volume.num_slices)
    explicit = _explicit_slices(info)
    if explicit is not None:
        covered, source = explicit, "params"
    elif entry.get("pending"):
        covered, source = [int(z) for z in entry["pending"]], "request"
    else:
        policy = config.existing_labels
        covered = (nonempty_slices(label) if policy == "nonempty"
                   else list(range(volume.num_slices)) if policy == "all" else [])
        source = "existing"
    bad = [z for z in covered if not 0 <= z < volume.num_slices]
    if bad:
        raise ValueError(f"label of {image_id}: slices {bad} outside 0..{volume.num_slices - 1}")
    covered = sorted(set(covered))

    merged_path = merged_label_path(config.labels_dir, image_id)
    if merged_path.is_file():
        merged = read_label(merged_path, volume.shape)
    else:
        merged = np.zeros(volume.shape, dtype=np.int64)
    merged[..., covered] = label[..., covered]
    _write_nifti(merged, volume.affine, merged_path)
    annotated = registry.mark_annotated(data, image_id, covered, volume.num_slices, source,
                                        info.get("client_id") or info.get("user"))

    # The datastore's final label becomes the union of the annotated slices.
    kept = {k: v for k, v in info.items() if k not in ("slices", "ts", "name")}
    _save_to_datastore(datastore, image_id, merged_path,
                       {**kept, "alseg_annotated_slices": annotated, "alseg_covered_slices": covered,
                        "alseg_source": source})
    entry["label_stamp"] = _stamp(datastore.get_label_uri(image_id, FINAL_TAG))
    logger.info("alseg: label of %s covers slices %s (%s); annotated now %s", image_id, covered, source, annotated)
    return {"covered": covered, "annotated": annotated, "source": source}
