"""Train the segmentation models of one active-learning round (paper Section 3.2.2).

"After each round of annotation collection, we train five segmentation models and
record the model's test score with the highest validation score." Each model is a
:func:`~.engines.create_trainer` engine validated every ``val_interval`` iterations
on whole validation volumes, keeping its best checkpoint; the round keeps the best
model over ``num_models`` seeds. :func:`train_round` trains 2D networks on the
labelled slices (UNet on full masks, DMPLS on scribbles, or the ResNet-50 UNet);
:func:`train_volume_round` trains the 3D UNet of the volume baseline on whole volumes.

Everything is deterministic given ``seed``: model m uses
``derive_seed(seed, "model", m)`` for its initialisation, dropout, data order,
augmentation and DMPLS mixing weights, and the caller's global torch RNG is left as
it was.

Distributed (``torchrun``, see docs/distributed.md): every rank builds the same network,
trains it through ``DistributedDataParallel`` on its share of each epoch's slices
(``DistributedSampler``) with its own augmentation, dropout and DMPLS draws
(:func:`~alseg_monai.utils.rank_seed`), and validates a share of the volumes; the
validation Dice is summed over ranks, so every rank keeps the same best model. Rank 0
writes the checkpoints, ``best_model.pt`` and ``round_summary.json``; every rank returns
the same :class:`RoundResult`. ``iterations`` and ``batch_size`` are per rank.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from torch import nn
from torch.utils.data import DistributedSampler

from ..errors import ConfigError, DataError
from ..utils import (
    atomic_write_json,
    clean_stale_temp_files,
    ddp_wrap,
    derive_seed,
    is_distributed,
    is_main_process,
    main_process_only,
    rank,
    rank_seed,
    torch_save_atomic,
    world_size,
)
from .engines import create_evaluator, create_trainer, resolve_amp
from .handlers import BestCheckpointSaver, IterationValidationHandler, RestoreBestHandler, attach_logging
from .losses import DMPLSLoss, SupervisedSegLoss
from .networks import get_network
from .transforms import train_augmentation

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "RoundResult",
    "create_train_loader",
    "iterations_for",
    "train_round",
    "train_volume_round",
]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"full": 12, "scribble": 6}
_LABEL_KEYS = {"full": "label", "scribble": "scribble"}
_NETWORKS_FOR = {"full": ("unet", "resnet50_unet"), "scribble": ("dmpls",)}


@dataclass
class RoundResult:
    """The outcome of one round's training.

    Attributes:
        model: the kept network (best validation Dice over the round's models), in eval mode.
        checkpoint_path: its state dict, ``<output_dir>/best_model.pt``.
        val_dice: best validation mean Dice of each model, in model order.
        best_index: index of the kept model.
        seconds: wall time of the round.
        iterations: training iterations per model.
        model_seeds: the seed of each model.
    """

    model: nn.Module
    checkpoint_path: Path
    val_dice: list[float]
    best_index: int
    seconds: float
    iterations: int
    model_seeds: list[int] = field(default_factory=list)

    @property
    def best_val_dice(self) -> float:
        """Validation mean Dice of the kept model."""
        return self.val_dice[self.best_index]


def iterations_for(fraction: float, scale: int = 60000, minimum: int = 200) -> int:
    """Training iterations for a round: ``max(minimum, round(scale * fraction))``.

    The paper's runs use ``60000 x`` the cumulative labelled fraction; a small
    ``scale`` suits CPU runs. ``minimum`` keeps tiny budgets trainable (at least one
    validation interval by default).

    Raises:
        ConfigError: a fraction outside (0, 1] or a non-positive scale / minimum.
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction: expected the cumulative labelled fraction in (0, 1], got {fraction}")
    if scale <= 0 or minimum < 1:
        raise ConfigError(f"iteration scale / minimum: expected positive values, got {scale}, {minimum}")
    return max(int(minimum), int(round(scale * fraction)))


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    # Fork the global RNG: training a round must not shift the caller's random stream.
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_dataset(dataset: Sequence[dict], name: str, keys: Sequence[str]) -> dict:
    if len(dataset) == 0:
        raise DataError(f"{name}: empty dataset")
    first = dataset[0]
    missing = [k for k in keys if k not in first]
    if missing:
        raise DataError(f"{name}: items lack keys {missing} (have {sorted(first)})")
    return first


def create_train_loader(dataset: Sequence[dict], transform: Callable | None, batch_size: int, num_workers: int = 0,
                        seed: int = 0, device: str | torch.device = "cpu") -> DataLoader:
    """The shuffled, augmented training loader of a round (MONAI ``Dataset`` + ``DataLoader``).

    ``transform`` (e.g. :func:`~.transforms.train_augmentation`) runs per access, in the
    workers when ``num_workers`` > 0; the shuffling generator is seeded with ``seed``.
    Distributed, a ``DistributedSampler`` seeded with ``seed`` (the same on every rank,
    so the ranks' shares are disjoint) gives each rank its share of every epoch.
    """
    device = torch.device(device)
    if int(batch_size) < 1 or int(num_workers) < 0:
        raise ConfigError(f"batch_size / num_workers: expected >= 1 / >= 0, got {batch_size}, {num_workers}")
    data = Dataset(data=dataset, transform=transform)
    sampler = DistributedSampler(data, world_size(), rank(), shuffle=True, seed=seed) if is_distributed() else None
    # MONAI's DataLoader reseeds the transforms in each worker from the generator's seed.
    return DataLoader(
        data, batch_size=int(batch_size), shuffle=sampler is None, sampler=sampler,
        num_workers=int(num_workers), generator=torch.Generator().manual_seed(rank_seed(seed)),
        pin_memory=device.type == "cuda", persistent_workers=int(num_workers) > 0,
    )


@main_process_only
def _clear_checkpoints(model_dir: Path) -> None:
    # A re-run of a round (e.g. after a crash) replaces its outputs: a stale best
    # checkpoint left in the folder would look like one of this run's.
    clean_stale_temp_files(model_dir)
    for stale in model_dir.glob("best_*.pt"):
        stale.unlink()


@dataclass
class _RoundSpec:
    """What differs between a slice round and a volume round."""

    build_network: Callable[[], nn.Module]
    build_loss: Callable[[int], nn.Module]
    build_transform: Callable[[int], Callable]
    label_key: str


def _run_round(spec: _RoundSpec, *, train_dataset, val_dataset, output_dir, num_classes, iterations, batch_size,
               num_models, val_interval, seed, device, num_workers, lr, momentum, weight_decay, poly_power,
               convention, val_batch_size, log_interval, tensorboard, progress, amp, summary: dict) -> RoundResult:
    if int(num_models) < 1:
        raise ConfigError(f"num_models: expected at least 1, got {num_models}")
    output_dir, device = Path(output_dir), torch.device(device)
    amp = resolve_amp(amp, device)
    start = time.perf_counter()
    val_dice, seeds, best = [], [], None
    for index in range(int(num_models)):
        model_seed = derive_seed(seed, "model", index)
        model_dir = output_dir / f"model_{index}"
        _clear_checkpoints(model_dir)
        with _seeded(model_seed, device):
            network = spec.build_network().to(device)
            if amp and getattr(network, "spatial_dims", 2) == 2:
                network = network.to(memory_format=torch.channels_last)
            if is_distributed():  # same initialisation on every rank, then each rank's own dropout masks
                torch.manual_seed(rank_seed(model_seed))
            transform = spec.build_transform(rank_seed(derive_seed(model_seed, "augment")))
            loader = create_train_loader(train_dataset, transform, batch_size, num_workers,
                                         derive_seed(model_seed, "loader"), device)
            trainer = create_trainer(ddp_wrap(network, device), loader,
                                     spec.build_loss(rank_seed(derive_seed(model_seed, "loss"))), iterations,
                                     device, spec.label_key, lr, momentum, weight_decay, poly_power, amp=amp)
            evaluator = create_evaluator(network, val_dataset, num_classes, device, convention, val_batch_size)
            saver = BestCheckpointSaver(network, model_dir, trainer)
            saver.attach(evaluator)
            IterationValidationHandler(val_interval, evaluator).attach(trainer)
            RestoreBestHandler(saver, network).attach(trainer)
            if is_main_process():
                attach_logging(trainer, evaluator, log_interval, model_dir / "tensorboard" if tensorboard else None,
                               progress)
            trainer.run()
        score = float(saver.best_score)
        logger.info("model %d (seed %d): best validation mean Dice %.4f (%s)", index, model_seed, score,
                    saver.best_path.name)
        val_dice.append(score)
        seeds.append(model_seed)
        if best is None or score > val_dice[best[0]]:
            best = (index, network.eval())
    best_index, model = best
    checkpoint_path = output_dir / "best_model.pt"
    seconds = time.perf_counter() - start
    _write_round(model, checkpoint_path, {
        **summary, "iterations": int(iterations), "batch_size": int(batch_size), "num_models": int(num_models),
        "val_interval": int(val_interval), "seed": int(seed), "model_seeds": seeds, "val_dice": val_dice,
        "best_index": best_index, "checkpoint": checkpoint_path.name, "seconds": seconds,
        "world_size": world_size(), "amp": amp,
    })
    return RoundResult(model, checkpoint_path, val_dice, best_index, seconds, int(iterations), seeds)


@main_process_only
def _write_round(model: nn.Module, checkpoint_path: Path, summary: dict) -> None:
    torch_save_atomic(model.state_dict(), checkpoint_path)
    atomic_write_json(checkpoint_path.parent / "round_summary.json", summary)


def train_round(
    train_dataset: Sequence[dict],
    val_dataset: Sequence[dict],
    output_dir: str | os.PathLike,
    num_classes: int,
    label_kind: str = "full",
    network: str | None = None,
    iterations: int = 60000,
    batch_size: int | None = None,
    num_models: int = 5,
    val_interval: int = 200,
    seed: int = 0,
    device: str | torch.device = "cpu",
    ignore_index: int = 4,
    num_workers: int = 0,
    network_kwargs: dict | None = None,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    poly_power: float = 0.9,
    augment: bool = True,
    rotate_degrees: float = 20.0,
    convention: str = "paper",
    val_batch_size: int = 32,
    log_interval: int = 50,
    tensorboard: bool = False,
    progress: bool = False,
    amp: bool | None = None,
) -> RoundResult:
    """Train ``num_models`` 2D segmentation models on the labelled slices; keep the best on validation.

    Args:
        train_dataset: labelled slices: items ``image`` (C, S, S) float32 and ``label``
            (1, S, S) int64 (full masks) or ``scribble`` (1, S, S) int64 (classes, and
            ``ignore_index`` where unannotated), e.g. a ``SliceDataset``.
        val_dataset: validation volumes (``VolumeDataset`` items: ``image`` (C, S, S, D),
            ``label_original`` (H, W, D), ``spatial_shape``, ``id``).
        output_dir: per-model checkpoints (``model_<m>/``), ``best_model.pt`` and
            ``round_summary.json`` are written here.
        num_classes: K, background included.
        label_kind: ``"full"`` (0.5 CE + 0.5 Dice) or ``"scribble"`` (DMPLS).
        network: ``"unet"`` / ``"resnet50_unet"`` for full masks, ``"dmpls"`` for
            scribbles; None picks ``unet`` / ``dmpls``.
        iterations: training iterations per model (see :func:`iterations_for`; paper
            60000 x cumulative labelled fraction).
        batch_size: slices per batch; None: paper 12 (full) / 6 (scribble).
        num_models: models trained with distinct seeds (paper 5).
        val_interval: validate every this many iterations (paper 200), and at the end.
        seed: the round's seed.
        device: ``"cpu"`` or a CUDA device (mixed precision, channels-last).
        ignore_index: the unannotated scribble value (4 for ACDC).
        num_workers: DataLoader worker processes.
        network_kwargs: extra network arguments (e.g. ``channels``, ``weights_path``).
        lr, momentum, weight_decay, poly_power: SGD and poly decay (paper 0.01, 0.9, 1e-4, 0.9).
        augment: random rot90 + flip / rotation (paper); False trains on raw slices.
        rotate_degrees: rotation range +/- (paper 20).
        convention: Dice convention of the validation score.
        val_batch_size: slices per forward pass in validation.
        log_interval: iterations between loss log lines.
        tensorboard: also write TensorBoard logs under ``model_<m>/tensorboard``.
        progress: show an ignite progress bar.
        amp: mixed precision in training: None on CUDA only (float16); True also on CPU
            (bfloat16 autocast and channels-last, faster on CPUs with AMX); False never.

    Returns:
        :class:`RoundResult`.

    Raises:
        ConfigError: an unknown label kind, or a network that cannot learn from it.
        DataError: empty datasets or items without the needed keys.
    """
    if label_kind not in _LABEL_KEYS:
        raise ConfigError(f"label_kind: expected one of {sorted(_LABEL_KEYS)}, got {label_kind!r}")
    network = network or _NETWORKS_FOR[label_kind][0]
    if network not in _NETWORKS_FOR[label_kind]:
        raise ConfigError(f"network: {network!r} cannot be trained on {label_kind} labels; "
                          f"expected one of {_NETWORKS_FOR[label_kind]}")
    label_key = _LABEL_KEYS[label_kind]
    first = _check_dataset(train_dataset, "train_dataset", ("image", label_key))
    _check_dataset(val_dataset, "val_dataset", ("image", "label_original", "spatial_shape"))
    batch_size = DEFAULT_BATCH_SIZE[label_kind] if batch_size is None else batch_size
    kwargs = {"in_channels": int(first["image"].shape[0]), "num_classes": num_classes, **(network_kwargs or {})}
    scribble_ignore = ignore_index if label_kind == "scribble" else None
    spec = _RoundSpec(
        build_network=lambda: get_network(network, **kwargs),
        build_loss=(lambda s: DMPLSLoss(ignore_index, seed=s)) if label_kind == "scribble"
        else (lambda s: SupervisedSegLoss()),
        build_transform=lambda s: train_augmentation(label_key, scribble_ignore, rotate_degrees, seed=s,
                                                     weights=(0.5, 0.25, 0.25) if augment else (0, 0, 1)),
        label_key=label_key,
    )
    logger.info("training %d %s model(s) on %d %s slices for %d iterations", num_models, network,
                len(train_dataset), label_kind, iterations)
    return _run_round(
        spec, train_dataset=train_dataset, val_dataset=val_dataset, output_dir=output_dir, num_classes=num_classes,
        iterations=iterations, batch_size=batch_size, num_models=num_models, val_interval=val_interval, seed=seed,
        device=device, num_workers=num_workers, lr=lr, momentum=momentum, weight_decay=weight_decay,
        poly_power=poly_power, convention=convention, val_batch_size=val_batch_size, log_interval=log_interval,
        tensorboard=tensorboard, progress=progress, amp=amp,
        summary={"network": network, "label_kind": label_kind, "train_items": len(train_dataset)},
    )


def train_volume_round(
    train_dataset: Sequence[dict],
    val_dataset: Sequence[dict],
    output_dir: str | os.PathLike,
    num_classes: int,
    iterations: int = 60000,
    batch_size: int = 1,
    num_models: int = 5,
    val_interval: int = 200,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    network_kwargs: dict | None = None,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    poly_power: float = 0.9,
    augment: bool = True,
    rotate_degrees: float = 20.0,
    convention: str = "paper",
    log_interval: int = 50,
    tensorboard: bool = False,
    progress: bool = False,
    amp: bool | None = None,
) -> RoundResult:
    """Train ``num_models`` 3D UNets on whole labelled volumes (the volume baseline of Figure 2).

    Same optimiser, schedule, validation and model selection as :func:`train_round`,
    with the 0.5 CE + 0.5 Dice loss on full masks.

    Args:
        train_dataset: labelled volumes: items ``image`` (C, S, S, D) float32 and
            ``label`` (1, S, S, D) int64 (``VolumeDataset`` items). Depth varies between
            volumes, hence ``batch_size`` 1 unless every volume has the same depth.
        val_dataset, output_dir, num_classes, iterations, num_models, val_interval,
        seed, device, num_workers, lr, momentum, weight_decay, poly_power, augment,
        rotate_degrees, convention, log_interval, tensorboard, progress, amp: as in
        :func:`train_round`.
        network_kwargs: extra :class:`~.unet3d.UNet3D` arguments.

    Returns:
        :class:`RoundResult` (its model is a :class:`~.unet3d.UNet3D`).
    """
    first = _check_dataset(train_dataset, "train_dataset", ("image", "label"))
    _check_dataset(val_dataset, "val_dataset", ("image", "label_original", "spatial_shape"))
    kwargs = {"in_channels": int(first["image"].shape[0]), "num_classes": num_classes, **(network_kwargs or {})}
    spec = _RoundSpec(
        build_network=lambda: get_network("unet3d", **kwargs),
        build_loss=lambda s: SupervisedSegLoss(),
        build_transform=lambda s: train_augmentation("label", None, rotate_degrees, spatial_dims=3, seed=s,
                                                     weights=(0.5, 0.25, 0.25) if augment else (0, 0, 1)),
        label_key="label",
    )
    logger.info("training %d 3D UNet(s) on %d volumes for %d iterations", num_models, len(train_dataset), iterations)
    return _run_round(
        spec, train_dataset=train_dataset, val_dataset=val_dataset, output_dir=output_dir, num_classes=num_classes,
        iterations=iterations, batch_size=batch_size, num_models=num_models, val_interval=val_interval, seed=seed,
        device=device, num_workers=num_workers, lr=lr, momentum=momentum, weight_decay=weight_decay,
        poly_power=poly_power, convention=convention, val_batch_size=1, log_interval=log_interval,
        tensorboard=tensorboard, progress=progress, amp=amp,
        summary={"network": "unet3d", "label_kind": "full", "train_items": len(train_dataset)},
    )
