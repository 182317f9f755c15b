"""Pieces of the bundle's single-step workflows, ``train.json``, ``evaluate.json``,
``inference.json`` and ``contrastive.json``, which compose them with MONAI's own
(``Dataset``, ``DataLoader``, ``SliceInferer``, ``SupervisedEvaluator``, ``SaveImaged``)
and the components of ``active_learning.json`` (``network_def``, ``val_transforms``,
``trainer``, ``encoders``, ...).

- :func:`read_labelled_list`: the slice ids of ``labelled_list`` (train.json).
- :func:`round_kind`, :func:`load_round_network`: a trained round's network with its
  ``models/best_model.pt`` (``checkpoint``: the round folder or that file).
- :func:`inference_datalist`: volume records of the images in ``inference#input``.
- :class:`ResizeToSourced`: a class map back to its volume's stored size and affine.
- :class:`TestDiceSaver`: 3D Dice of an evaluator's predictions, written as the round's
  ``test_dice.csv`` and ``evaluation.json`` (evaluate.json).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize
from torch import nn

from ..data.readers.common import check_same_shape, volume_record
from ..data.records import natural_key
from ..errors import ConfigError, DataError
from ..evaluation import volume_dice
from ..evaluation.volumes import VolumeEvaluation, write_dice_csv
from ..utils import is_main_process
from ..utils.fresh import construct
from ..utils.io import atomic_write_json, read_json
from .models import load_state
from .state import RoundPaths

__all__ = [
    "ResizeToSourced",
    "TestDiceSaver",
    "inference_datalist",
    "load_round_network",
    "read_labelled_list",
    "round_kind",
]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def read_labelled_list(path: str | Path | None) -> list[str]:
    """Slice ids from a labelled list: a JSON list, a JSON object with ``labelled`` (a
    round's ``selection.json``), a CSV with an ``id`` column (an annotation request), or
    a text file with one id per line.

    Raises:
        ConfigError: no file given, a missing file, or one that holds no id.
    """
    if path is None:
        raise ConfigError("labelled_list: give the file of slice ids to train on, e.g. a round's selection.json")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labelled_list: file {path} not found")
    if path.suffix == ".json":
        content = read_json(path)
        ids = content.get("labelled") if isinstance(content, dict) else content
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "id" not in rows[0]:
            raise ConfigError(f"labelled_list: {path} has no 'id' column (columns: {sorted(rows[0])})")
        ids = [row["id"] for row in rows]
    else:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not isinstance(ids, list) or not ids:
        raise ConfigError(f"labelled_list: {path} holds no slice id; expected a list of ids")
    return [str(i) for i in ids]


# trained rounds -----------------------------------------------------------------------------
def _round_paths(checkpoint: str | Path | None) -> RoundPaths:
    if checkpoint is None:
        raise ConfigError("checkpoint: give the folder of a trained round, such as "
                          "runs/x/gcl_coreset/repeat_0/round_7")
    path = Path(checkpoint)
    root = path.parent.parent if path.name == "best_model.pt" else path
    paths = RoundPaths(root)
    if not paths.training.is_file():
        raise ConfigError(f"checkpoint: {root} is not a trained round (no training.json); "
                          "give a round folder such as runs/x/gcl_coreset/repeat_0/round_7")
    return paths


def round_kind(checkpoint: str | Path | None) -> str:
    """The kind of network that trained a round, from its ``training.json``: ``full``
    (``network_def``), ``scribble`` (``scribble_network_def``) or ``volume``
    (``volume_network_def``, the 3D baseline).

    Raises:
        ConfigError: no checkpoint, or one that is not a trained round.
    """
    summary = read_json(_round_paths(checkpoint).training)
    return "volume" if summary.get("unit") == "volume" else str(summary.get("label_kind", "full"))


def load_round_network(network_def: nn.Module | Callable[[], nn.Module], checkpoint: str | Path | None,
                       device: str | torch.device = "cpu") -> nn.Module:
    """A network of ``network_def`` (a factory or a module) with the trained round's
    ``models/best_model.pt`` loaded strictly, in eval mode on ``device``.

    Raises:
        ConfigError: ``checkpoint`` is not a trained round.
        DataError: a missing checkpoint, or one of another architecture.
    """
    return load_state(construct(network_def), _round_paths(checkpoint).models / "best_model.pt", device)


# inference ---------------------------------------------------------------------------------
def _input_files(inputs: str | Path | Sequence[str | Path] | None) -> list[Path]:
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


def _stem(path: Path) -> str:
    for suffix in _IMAGE_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def inference_datalist(inputs: str | Path | Sequence[str | Path] | None) -> list[dict]:
    """Volume records of the images to segment, the input of the bundle's ``val_transforms``.

    Args:
        inputs: a folder (its NIfTI / NRRD / MHA images, in natural order) or a list of files.

    Returns:
        One record per image: ``id`` (the file name without its suffix), ``image`` (the
        path), no label, and ``filename_or_obj`` (the path, which names the prediction).

    Raises:
        ConfigError: no input. DataError: an empty folder or an unreadable image.
    """
    records = []
    for path in _input_files(inputs):
        shape = check_same_shape([path])
        name = _stem(path)
        records.append(volume_record(name, name, "nifti", str(path), None, None, shape[2] if len(shape) == 3 else 1,
                                     shape[:2], filename_or_obj=str(path)))
    return records


class ResizeToSourced(MapTransform):
    """Class maps back on their volume's stored grid: (1, S, S, D) -> (1, H, W, D) int64,
    resized in-plane with nearest-exact (as :func:`~alseg_monai.evaluation.predict`), as a
    ``MetaTensor`` with the source ``affine`` (also as ``original_affine``, with
    ``spatial_shape``, so that ``SaveImaged(resample=True)`` writes it unchanged, one-slice
    maps included) and ``filename_or_obj`` where the item has one.

    Reads the item's ``spatial_shape`` (H, W) and ``affine`` (4, 4). Kept because MONAI's
    ``Resized`` takes one size for all items, while each volume has its own.
    """

    def __init__(self, keys: str | Sequence[str] = "pred", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        out = dict(data)
        height, width = (int(s) for s in out["spatial_shape"])
        affine = torch.as_tensor(np.asarray(out["affine"], dtype=np.float64))
        for key in self.key_iterator(out):
            classes = torch.as_tensor(out[key]).as_subclass(torch.Tensor)
            resized = Resize((height, width, -1), mode="nearest-exact")(classes)
            resized = torch.as_tensor(resized).as_subclass(torch.Tensor).to(torch.int64)
            meta = {"original_affine": affine, "spatial_shape": tuple(resized.shape[1:])}
            if "filename_or_obj" in out:
                meta["filename_or_obj"] = out["filename_or_obj"]
            out[key] = MetaTensor(resized, affine=affine, meta=meta)
        return out


# evaluation ----------------------------------------------------------------------------------
class TestDiceSaver:
    """Per-volume, per-class 3D Dice of an evaluator's predictions (the round's test score,
    paper Section 3.2.2), written when the evaluation completes: the round's
    ``test_dice.csv`` and ``evaluation.json`` (mean, per class, per volume).

    Each iteration's items hold ``pred`` (1, H, W, D) classes (e.g. after
    :class:`ResizeToSourced`) and ``label_original`` (H, W, D), ``id``, ``patient``.
    The mean also goes to ``engine.state.metrics[metric_name]``.

    Args:
        checkpoint: the trained round (its folder or its ``best_model.pt``).
        num_classes: K, background included.
        convention: empty-class convention of :func:`~alseg_monai.evaluation.volume_dice`.
        metric_name: the metric's name in the engine's state.
    """

    __test__ = False  # not a pytest class

    def __init__(self, checkpoint: str | Path, num_classes: int, convention: str = "paper",
                 metric_name: str = "test_mean_dice") -> None:
        self.paths = _round_paths(checkpoint)
        self.num_classes, self.convention, self.metric_name = int(num_classes), convention, metric_name
        self.ids: list[str] = []
        self.patients: list[str] = []
        self.scores: list[np.ndarray] = []
        self.result: dict | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.score)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def reset(self, engine: Engine) -> None:
        self.ids, self.patients, self.scores = [], [], []

    def score(self, engine: Engine) -> None:
        """Dice of each volume of the iteration (decollated batch and output)."""
        for item, output in zip(engine.state.batch, engine.state.output):
            pred = torch.as_tensor(output["pred"]).as_subclass(torch.Tensor).cpu()[0]
            self.scores.append(volume_dice(pred, item["label_original"], self.num_classes, self.convention))
            self.ids.append(str(item["id"]))
            self.patients.append(str(item.get("patient", "")))

    def write(self, engine: Engine) -> None:
        if not self.scores:
            raise DataError("evaluation: no test volume was scored")
        evaluation = VolumeEvaluation(self.ids, self.patients, np.stack(self.scores), self.convention)
        self.result = {"checkpoint": str(self.paths.root), "dice": evaluation.mean_dice,
                       "dice_per_class": [float(v) for v in evaluation.per_class],
                       "dice_per_volume": [float(v) for v in evaluation.per_volume], "volumes": list(evaluation.ids)}
        engine.state.metrics[self.metric_name] = evaluation.mean_dice
        write_dice_csv(evaluation, self.paths.test_csv)
        if is_main_process():
            atomic_write_json(self.paths.root / "evaluation.json", self.result)
        logger.info("test mean Dice of %s: %.4f", self.paths.root, evaluation.mean_dice)
