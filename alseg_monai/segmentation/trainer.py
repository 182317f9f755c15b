"""Train the segmentation models of one active-learning round (paper Section 3.2.2).

"After each round of annotation collection, we train five segmentation models and
record the model's test score with the highest validation score." A
:class:`RoundTrainer` is built from components (the bundle's ``network_def``, ``loss``,
``optimizer``, ``lr_scheduler``, ``train_transforms`` and handler lists); each model is a
:func:`~.engines.create_trainer` engine validated on whole validation volumes, keeping
its best checkpoint, and the round keeps the best model over its seeds.
:func:`train_round` (2D networks by name: UNet on full masks, DMPLS on scribbles, the
ResNet-50 UNet) and :func:`train_volume_round` (the 3D UNet of the volume baseline)
build one from the paper's settings, for the Python API.

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
import copy
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.data import DataLoader
from monai.handlers import TensorBoardStatsHandler
from torch import nn
from torch.utils.data import DistributedSampler

from ..data.untracked import UntrackedDataset
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
from ..utils.describe import describe
from ..utils.flags import as_bool
from ..utils.fresh import build_network, construct
from ..utils.progress import bar_disable
from .engines import create_evaluator, create_trainer, resolve_amp
from .handlers import BestCheckpointSaver, IterationValidationHandler, RestoreBestHandler, loss_terms
from .losses import DMPLSLoss, SupervisedSegLoss
from .networks import get_network
from .round_logging import TrainStatsHandler, ValidationStatsHandler, ValidationTensorBoardHandler
from .transforms import train_augmentation

__all__ = [
    "RoundTrainer",
    "default_handlers",
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
    data = UntrackedDataset(data=dataset, transform=transform)
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


def make_handlers(entries: Sequence[Any], context: Mapping[str, Any], where: str) -> list[Any]:
    """Handlers of one engine from a handler list: each entry is a handler (an object with
    ``attach(engine)``, used as it is) or a factory (e.g. a bundle component with
    ``"_mode_": "callable"``) called with the values of ``context`` its signature names.

    Raises:
        ConfigError: an entry that is neither, or a factory whose call fails on its arguments.
    """
    handlers = []
    for index, entry in enumerate(entries or ()):
        if hasattr(entry, "attach") and not isinstance(entry, (type, functools.partial)):
            handlers.append(entry)
            continue
        if not callable(entry):
            raise ConfigError(f"{where}[{index}]: expected a handler with attach(engine) or a factory of one, "
                              f"got {entry!r}")
        parameters = inspect.signature(entry).parameters
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        arguments = {k: v for k, v in context.items() if takes_all or k in parameters}
        try:
            handler = entry(**arguments)
        except TypeError as err:
            raise ConfigError(f"{where}[{index}]: cannot build {getattr(entry, 'func', entry)!r} from "
                              f"{sorted(arguments)} ({err}); the round provides {sorted(context)}") from err
        if not hasattr(handler, "attach"):
            raise ConfigError(f"{where}[{index}]: {type(handler).__name__} has no attach(engine)")
        handlers.append(handler)
    return handlers


def _builds(entry: Any, kind: type) -> bool:
    """Whether a handler-list entry is, or builds, a ``kind``."""
    target = getattr(entry, "func", entry)
    return isinstance(entry, kind) or isinstance(target, type) and issubclass(target, kind)


def _one(handlers: Sequence[Any], kind: type, where: str, what: str) -> Any:
    found = [h for h in handlers if isinstance(h, kind)]
    if len(found) != 1:
        raise ConfigError(f"{where}: expected exactly one {kind.__name__} ({what}), found {len(found)}")
    return found[0]


class RoundTrainer:
    """The models of one active-learning round, built from components (paper Sec. 3.2.2).

    "After each round of annotation collection, we train five segmentation models and
    record the model's test score with the highest validation score." Model ``m`` of a
    round is a fresh copy of ``network_def`` (:func:`build_network`, seed
    ``derive_seed(seed, "model", m)``), trained for ``iterations`` iterations by a MONAI
    ``SupervisedTrainer`` with ``loss``, ``optimizer(parameters)`` and
    ``lr_scheduler(optimizer, total_iters=iterations)`` stepped every iteration, on
    ``train_transforms``-augmented labelled slices (a seeded copy per model). The
    trainer's handlers come from ``train_handlers`` and the validator's from
    ``val_handlers`` (:func:`make_handlers`, context: ``validator``, ``network``,
    ``save_dir``, ``step_engine``, ``trainer``, ``log_dir``, ``iterations``); they must
    hold one :class:`~.handlers.IterationValidationHandler` and one
    :class:`~.handlers.BestCheckpointSaver`, which choose the model's best-on-validation
    weights (restored when training ends); the round keeps the model with the best of them.

    Args:
        network_def: the network: a module or a factory, see :func:`build_network`; it maps
            (B, C, H, W) images to (B, K, H, W) logits (DMPLS: (main, aux) in training).
        loss: the training loss (a :class:`~.losses.DMPLSLoss` selects the DMPLS iteration;
            a loss with ``reseed(seed)`` is reseeded per model).
        optimizer: ``optimizer(parameters) -> torch.optim.Optimizer``.
        lr_scheduler: ``lr_scheduler(optimizer, total_iters=iterations)``, or None.
        train_transforms: the training items' dictionary transform (MONAI ``Compose``),
            deep-copied and seeded per model, or None.
        label_key: the target key: ``label`` (full masks) or ``scribble``.
        batch_size: slices per training batch.
        models_per_round: models trained with distinct seeds (paper 5).
        train_handlers, val_handlers: handler lists (see above).
        device: where to train; mixed precision follows ``amp`` (:func:`~.engines.resolve_amp`).
        amp: None (CUDA only), True or False.
        num_workers: loader worker processes.
        convention: Dice convention of the validation score.
        val_batch_size: slices per forward pass in validation.
        progress: an ignite progress bar while training (on a terminal only).

    Distributed (``torchrun``, docs/distributed.md): every rank builds the same network,
    trains it through ``DistributedDataParallel`` on its share of each epoch's slices with
    its own augmentation, dropout and loss draws, and validates a share of the volumes;
    rank 0 writes the checkpoints, ``best_model.pt`` and ``round_summary.json``.
    ``iterations`` and ``batch_size`` are per rank.
    """

    def __init__(
        self,
        network_def: nn.Module | Callable[[], nn.Module],
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr_scheduler: Callable[..., Any] | None = None,
        train_transforms: Callable | None = None,
        label_key: str = "label",
        batch_size: int = 12,
        models_per_round: int = 5,
        train_handlers: Sequence[Any] = (),
        val_handlers: Sequence[Any] = (),
        device: str | torch.device = "cpu",
        amp: bool | None = None,
        num_workers: int = 0,
        convention: str = "paper",
        val_batch_size: int = 32,
        progress: bool = False,
    ) -> None:
        if not callable(optimizer):
            raise ConfigError(f"optimizer: expected a factory optimizer(parameters), got {optimizer!r}; in a bundle "
                              'give it "_mode_": "callable"')
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise ConfigError(f"lr_scheduler: expected a factory lr_scheduler(optimizer, total_iters), got "
                              f"{lr_scheduler!r}")
        if isinstance(models_per_round, bool) or int(models_per_round) < 1:
            raise ConfigError(f"models_per_round: expected at least 1, got {models_per_round}")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise ConfigError(f"batch_size: expected a positive number of slices, got {batch_size}")
        self.network_def, self.loss, self.optimizer, self.lr_scheduler = network_def, loss, optimizer, lr_scheduler
        self.train_transforms, self.label_key = train_transforms, label_key
        self.batch_size, self.models_per_round = int(batch_size), int(models_per_round)
        self.train_handlers, self.val_handlers = list(train_handlers), list(val_handlers)
        self.device, self.amp = torch.device(device), resolve_amp(amp, device)
        self.num_workers, self.convention, self.val_batch_size = int(num_workers), convention, int(val_batch_size)
        self.progress = as_bool(progress, "progress")

    def describe(self) -> dict:
        """What the models of a round depend on (JSON-able; the logging handlers left out)."""
        validation = [h for h in self.train_handlers if getattr(h, "func", h) is IterationValidationHandler]
        return describe({
            "network_def": self.network_def, "loss": self.loss, "optimizer": self.optimizer,
            "lr_scheduler": self.lr_scheduler, "train_transforms": self.train_transforms, "label_key": self.label_key,
            "batch_size": self.batch_size, "models_per_round": self.models_per_round, "amp": self.amp,
            "validation": validation,
        })

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh network of ``network_def`` drawn from ``seed`` (e.g. to load a checkpoint into)."""
        return build_network(self.network_def, seed)

    def train(self, train_dataset: Sequence[dict], val_dataset: Sequence[dict], output_dir: str | os.PathLike,
              num_classes: int, iterations: int, seed: int, summary: Mapping | None = None) -> RoundResult:
        """Train the round's models on ``train_dataset`` and keep the best on ``val_dataset``.

        Args:
            train_dataset: labelled slices: items ``image`` (C, S, S) float32 and
                ``label_key`` (1, S, S) int64 (e.g. a ``SliceDataset``).
            val_dataset: validation volumes (``VolumeDataset`` items).
            output_dir: per-model checkpoints (``model_<m>/``), ``best_model.pt`` and
                ``round_summary.json`` are written here.
            num_classes: K, background included.
            iterations: training iterations per model.
            seed: the round's seed.
            summary: extra entries for ``round_summary.json``.

        Raises:
            ConfigError: handler lists without their validation handler or checkpoint saver.
            DataError: empty datasets or items without the needed keys.
        """
        _check_dataset(train_dataset, "train_dataset", ("image", self.label_key))
        _check_dataset(val_dataset, "val_dataset", ("image", "label_original", "spatial_shape"))
        output_dir = Path(output_dir)
        start = time.perf_counter()
        val_dice, seeds, best = [], [], None
        for index in range(self.models_per_round):
            model_seed = derive_seed(seed, "model", index)
            network, score = self._train_model(train_dataset, val_dataset, output_dir / f"model_{index}",
                                               num_classes, int(iterations), model_seed)
            logger.info("model %d (seed %d): best validation mean Dice %.4f", index, model_seed, score)
            val_dice.append(score)
            seeds.append(model_seed)
            if best is None or score > val_dice[best[0]]:
                best = (index, network.eval())
        best_index, model = best
        checkpoint_path = output_dir / "best_model.pt"
        seconds = time.perf_counter() - start
        _write_round(model, checkpoint_path, {
            **dict(summary or {}), "iterations": int(iterations), "batch_size": self.batch_size,
            "num_models": self.models_per_round, "seed": int(seed), "model_seeds": seeds, "val_dice": val_dice,
            "best_index": best_index, "checkpoint": checkpoint_path.name, "seconds": seconds,
            "world_size": world_size(), "amp": self.amp,
        })
        return RoundResult(model, checkpoint_path, val_dice, best_index, seconds, int(iterations), seeds)

    def _train_model(self, train_dataset, val_dataset, model_dir: Path, num_classes: int, iterations: int,
                     model_seed: int) -> tuple[nn.Module, float]:
        _clear_checkpoints(model_dir)
        with _seeded(model_seed, self.device):
            # Built inside the seeded stream: dropout then continues from the weights' draws.
            network = construct(self.network_def).to(self.device)
            if self.amp and getattr(network, "spatial_dims", 2) == 2:
                network = network.to(memory_format=torch.channels_last)
            if is_distributed():  # same initialisation on every rank, then each rank's own dropout masks
                torch.manual_seed(rank_seed(model_seed))
            loader = create_train_loader(train_dataset, self._transforms(model_seed), self.batch_size,
                                         self.num_workers, derive_seed(model_seed, "loader"), self.device)
            trainer = create_trainer(ddp_wrap(network, self.device), loader, self._loss(model_seed), iterations,
                                     self.device, self.label_key, optimizer=self.optimizer,
                                     lr_scheduler=self.lr_scheduler, amp=self.amp)
            evaluator = create_evaluator(network, val_dataset, num_classes, self.device, self.convention,
                                         self.val_batch_size)
            context = {"network": network, "save_dir": model_dir, "step_engine": trainer, "trainer": trainer,
                       "validator": evaluator, "log_dir": str(model_dir / "tensorboard"), "iterations": iterations}
            # The validator's handlers first: the checkpoint saver must see each score before
            # the trainer's handlers act on it. Rank 0 logs and writes; every rank validates
            # and restores the best weights, so other ranks build only those two handlers.
            val_entries, train_entries = self.val_handlers, self.train_handlers
            if not is_main_process():
                val_entries = [e for e in val_entries if _builds(e, BestCheckpointSaver)]
                train_entries = [e for e in train_entries if _builds(e, IterationValidationHandler)]
            val_handlers = make_handlers(val_entries, context, "val_handlers")
            train_handlers = make_handlers(train_entries, context, "train_handlers")
            saver = _one(val_handlers, BestCheckpointSaver, "val_handlers", "keeps the best-on-validation weights")
            _one(train_handlers, IterationValidationHandler, "train_handlers", "runs the validator")
            for handler in val_handlers:
                handler.attach(evaluator)
            for handler in train_handlers:
                handler.attach(trainer)
            RestoreBestHandler(saver, network).attach(trainer)
            closers = [h.close for h in (*val_handlers, *train_handlers) if callable(getattr(h, "close", None))]
            trainer.add_event_handler(Events.COMPLETED, lambda _: [close() for close in closers])
            if self.progress:
                ProgressBar(persist=False, disable=bar_disable(True)).attach(trainer, output_transform=lambda out: {
                    "loss": float(out["loss"].detach())})
            trainer.run()
        if saver.best_score is None:
            raise DataError(f"{model_dir}: the validator never scored the model; check the val_handlers")
        return network, float(saver.best_score)

    def _transforms(self, model_seed: int):
        if self.train_transforms is None:
            return None
        transform = copy.deepcopy(self.train_transforms)
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=rank_seed(derive_seed(model_seed, "augment")))
        return transform

    def _loss(self, model_seed: int) -> nn.Module:
        loss = copy.deepcopy(self.loss)
        if callable(getattr(loss, "reseed", None)):
            loss.reseed(rank_seed(derive_seed(model_seed, "loss")))
        return loss


@main_process_only
def _write_round(model: nn.Module, checkpoint_path: Path, summary: dict) -> None:
    torch_save_atomic(model.state_dict(), checkpoint_path)
    atomic_write_json(checkpoint_path.parent / "round_summary.json", summary)


def default_handlers(val_interval: int, log_interval: int = 50, tensorboard: bool = False) -> tuple[list, list]:
    """The handler lists of the bundle's defaults, for the Python API: validation every
    ``val_interval`` iterations and at the end, the best-checkpoint saver, StatsHandler
    logging every ``log_interval`` iterations and, with ``tensorboard``, TensorBoard logs
    in each model's ``tensorboard`` folder. Returns ``(train_handlers, val_handlers)``."""
    train = [functools.partial(IterationValidationHandler, interval=int(val_interval)),
             TrainStatsHandler(log_interval)]
    val = [BestCheckpointSaver, ValidationStatsHandler]
    if tensorboard:
        train.append(functools.partial(TensorBoardStatsHandler, iteration_log=int(log_interval), epoch_log=False,
                                       output_transform=loss_terms))
        val.append(ValidationTensorBoardHandler)
    return train, val


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
    kwargs = {"in_channels": int(first["image"].shape[0]), "num_classes": num_classes, **(network_kwargs or {})}
    trainer = RoundTrainer(
        network_def=functools.partial(get_network, network, **kwargs),
        loss=DMPLSLoss(ignore_index) if label_kind == "scribble" else SupervisedSegLoss(),
        optimizer=functools.partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.PolynomialLR, power=poly_power),
        train_transforms=train_augmentation(label_key, ignore_index if label_kind == "scribble" else None,
                                            rotate_degrees, weights=(0.5, 0.25, 0.25) if augment else (0, 0, 1)),
        label_key=label_key, batch_size=DEFAULT_BATCH_SIZE[label_kind] if batch_size is None else batch_size,
        models_per_round=num_models, device=device, amp=amp, num_workers=num_workers, convention=convention,
        val_batch_size=val_batch_size, progress=progress,
        **dict(zip(("train_handlers", "val_handlers"), default_handlers(val_interval, log_interval, tensorboard))),
    )
    logger.info("training %d %s model(s) on %d %s slices for %d iterations", num_models, network,
                len(train_dataset), label_kind, iterations)
    return trainer.train(train_dataset, val_dataset, output_dir, num_classes, iterations, seed,
                         summary={"network": network, "label_kind": label_kind, "train_items": len(train_dataset)})


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
    kwargs = {"in_channels": int(first["image"].shape[0]), "num_classes": num_classes, **(network_kwargs or {})}
    trainer = RoundTrainer(
        network_def=functools.partial(get_network, "unet3d", **kwargs), loss=SupervisedSegLoss(),
        optimizer=functools.partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.PolynomialLR, power=poly_power),
        train_transforms=train_augmentation("label", None, rotate_degrees, spatial_dims=3,
                                            weights=(0.5, 0.25, 0.25) if augment else (0, 0, 1)),
        batch_size=batch_size, models_per_round=num_models, device=device, amp=amp, num_workers=num_workers,
        convention=convention, val_batch_size=1, progress=progress,
        **dict(zip(("train_handlers", "val_handlers"), default_handlers(val_interval, log_interval, tensorboard))),
    )
    logger.info("training %d 3D UNet(s) on %d volumes for %d iterations", num_models, len(train_dataset), iterations)
    return trainer.train(train_dataset, val_dataset, output_dir, num_classes, iterations, seed,
                         summary={"network": "unet3d", "label_kind": "full", "train_items": len(train_dataset)})
