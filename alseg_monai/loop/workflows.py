"""Single-step workflows behind the bundle's ``train.json``, ``evaluate.json``,
``inference.json`` and ``contrastive.json``: one round on a given labelled list, the
test evaluation of a trained round, segmentation of new volumes, and the encoder alone.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data import DEFAULT_INTENSITY, SliceCache, natural_key
from ..data.readers.common import check_same_shape, volume_record
from ..errors import ConfigError, DataError
from ..utils import is_main_process
from ..utils.io import atomic_write_json, read_json
from .models import load_model
from .state import RoundPaths

if TYPE_CHECKING:
    from .experiment import ActiveLearningExperiment

__all__ = ["evaluate_checkpoint", "read_labeled_list", "segment_volumes", "train_labeled_round"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def read_labeled_list(path: str | Path) -> list[str]:
    """Slice ids from a labelled list: a JSON list, a JSON object with ``labelled`` (a
    round's ``selection.json``), a CSV with an ``id`` column (an annotation request), or
    a text file with one id per line.

    Raises:
        ConfigError: the file is missing or holds no id.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labeled_list: file {path} not found")
    if path.suffix == ".json":
        content = read_json(path)
        ids = content.get("labelled") if isinstance(content, dict) else content
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "id" not in rows[0]:
            raise ConfigError(f"labeled_list: {path} has no 'id' column (columns: {sorted(rows[0])})")
        ids = [row["id"] for row in rows]
    else:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not isinstance(ids, list) or not ids:
        raise ConfigError(f"labeled_list: {path} holds no slice id; expected a list of ids")
    return [str(i) for i in ids]


def train_labeled_round(experiment: ActiveLearningExperiment, labeled_list: str | Path, name: str = "manual") -> dict:
    """Train and evaluate one round on the slices listed in ``labeled_list`` (every
    strategy-free setting, e.g. label kind and segmentation, from the experiment).

    Writes ``<output_dir>/<name>/`` like an AL round (training.json, models/,
    test_dice.csv, metrics.json) and returns the metrics.

    Raises:
        ConfigError: ids that are not slices of the training split.
    """
    experiment.prepare()
    ids = read_labeled_list(labeled_list)
    unknown = [i for i in ids if i not in experiment.records]
    if unknown:
        raise ConfigError(
            f"labeled_list: {len(unknown)} ids are not slices of the training split, e.g. {unknown[:3]}"
        )
    spec = experiment.specs[0] if experiment.specs else None
    label_kind = spec.label_kind if spec else experiment.settings["label_kind"]
    from .experiment import StrategySpec

    manual = StrategySpec(name, "manual", label_kind, "slice")
    return experiment.run_labeled(manual, ids, RoundPaths(experiment.paths.root / name))


def evaluate_checkpoint(experiment: ActiveLearningExperiment, checkpoint: str | Path) -> dict:
    """Test 3D Dice of a trained round (``checkpoint``: its folder, holding training.json
    and models/best_model.pt); writes ``test_dice.csv`` and ``evaluation.json`` there."""
    experiment.prepare()
    paths = _round_paths(checkpoint)
    summary = read_json(paths.training)
    model = load_model(paths.models / "best_model.pt", summary["network_spec"], experiment.device)
    evaluation = experiment.evaluate_model(model, paths.test_csv)
    result = {"checkpoint": str(paths.root), "dice": evaluation.mean_dice,
              "dice_per_class": [float(v) for v in evaluation.per_class],
              "dice_per_volume": [float(v) for v in evaluation.per_volume], "volumes": list(evaluation.ids)}
    if is_main_process():  # under torchrun every rank holds the gathered result
        atomic_write_json(paths.root / "evaluation.json", result)
    logger.info("test mean Dice of %s: %.4f", paths.root, evaluation.mean_dice)
    return result


def _round_paths(checkpoint: str | Path) -> RoundPaths:
    path = Path(checkpoint)
    root = path.parent.parent if path.name == "best_model.pt" else path
    paths = RoundPaths(root)
    if not paths.training.is_file():
        raise ConfigError(f"checkpoint: {root} is not a trained round (no training.json); "
                          "give a round folder such as runs/x/gcl_coreset/repeat_0/round_7")
    return paths


def _run_settings(paths: RoundPaths) -> dict:
    for folder in [paths.root, *paths.root.parents]:
        if (folder / "settings.json").is_file():
            return read_json(folder / "settings.json")
    raise ConfigError(f"checkpoint: no settings.json above {paths.root}; it must lie inside a run directory")


def _input_files(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(inputs, (str, Path)) and Path(inputs).is_dir():
        files = [p for p in Path(inputs).iterdir() if p.name.lower().endswith(_IMAGE_SUFFIXES)]
        if not files:
            raise DataError(
                f"{inputs}: no NIfTI / NRRD / MHA image in this folder; set inference#input to a folder of images "
                "or a list of image files"
            )
        return sorted(files, key=natural_key)
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs or [])
    if not items:
        raise ConfigError("inference#input: give a folder or a list of image files")
    return [Path(p) for p in items]


def segment_volumes(
    inputs: str | Path | Sequence[str | Path],
    checkpoint: str | Path,
    output_dir: str | Path,
    device: str = "cpu",
) -> list[Path]:
    """Segment new volumes with a trained round's model into NIfTI label maps.

    Preprocessing (slice size, intensity normalisation) is the one of the run that
    trained the model (its ``settings.json``); each prediction is resized back to the
    source slice size and written with the source affine as
    ``<output_dir>/<name>_seg.nii.gz``.

    Raises:
        ConfigError: no inputs, or a checkpoint outside a run directory.
        DataError: an unreadable input.
    """
    from ..segmentation import predict, save_prediction_nifti

    paths = _round_paths(checkpoint)
    settings = _run_settings(paths)
    summary = read_json(paths.training)
    spec = summary["network_spec"]
    model = load_model(paths.models / "best_model.pt", spec, device)
    records = []
    for path in _input_files(inputs):
        shape = check_same_shape([path])
        stem = path.name
        for suffix in _IMAGE_SUFFIXES:
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        records.append(volume_record(stem, stem, "nifti", str(path), None, None,
                                     shape[2] if len(shape) == 3 else 1, shape[:2]))
    mode, options = DEFAULT_INTENSITY.get(settings["dataset_kind"], ("percentile", {}))
    if settings.get("intensity"):
        options = dict(settings["intensity"])
        mode = options.pop("mode")
    cache = SliceCache(records, settings["image_size"], spec["kwargs"]["num_classes"], None, mode, options,
                       progress=False)
    written = []
    for record in records:
        entry = cache.volume(record["id"])
        prediction = predict(model, torch.as_tensor(entry["image"]), tuple(int(s) for s in entry["spatial_shape"]))
        target = Path(output_dir) / f"{record['id']}_seg.nii.gz"
        save_prediction_nifti(prediction, entry["affine"], target)
        written.append(target)
        logger.info("segmented %s -> %s", record["image"], target)
    return written
