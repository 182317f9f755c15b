"""Encoder training with group contrastive learning, as an ignite engine (paper Sec. 3.2.1).

Building blocks (each usable from a bundle config): :func:`build_contrastive_loader`
(two augmented views per slice, batches from a :class:`GroupBatchSampler`),
:func:`create_contrastive_trainer` (the iteration: one forward pass over both views,
Eq. 5 loss, Adam step), :func:`attach_training_handlers` (sampler and augmentation
redraws, per-term epoch averages, MONAI stats and TensorBoard logging, progress bar,
atomic per-epoch checkpoints) and :func:`resume_from_checkpoint`.
:func:`train_encoder` wires them with the paper's defaults.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ProgressBar
from ignite.metrics import Average
from monai.data import DataLoader
from monai.handlers import StatsHandler, TensorBoardStatsHandler
from monai.transforms import Compose
from torch.utils.data import Dataset

from ..data.untracked import UntrackedDataset
from ..errors import ConfigError, DataError
from ..utils import (
    broadcast_module,
    broadcast_object,
    clean_stale_temp_files,
    ddp_wrap,
    derive_seed,
    is_main_process,
    rank,
    rank_seed,
    torch_save_atomic,
    world_size,
)
from ..utils.fresh import build_network
from ..utils.progress import bar_disable
from ..utils.threads import check_threads, thread_limit
from .augment import TwoViewsd
from .groups import batch_group_ids
from .handlers import AugmentationSeedHandler, ResumableDiskSaver, SetEpochHandler, latest_checkpoint
from .networks import SimCLREncoder
from .objective import ContrastiveObjective
from .sampler import GroupBatchSampler

__all__ = ["EncoderSpec", "train_encoder"]

logger = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pt"
_VIEWS = ("view_1", "view_2")


def build_contrastive_loader(
    dataset: Dataset,
    sampler: GroupBatchSampler,
    augmentation: Compose | None = None,
    num_workers: int = 0,
    seed: int = 0,
    image_key: str = "image",
) -> DataLoader:
    """A loader of batches ``{"view_1": (B,C,H,W), "view_2": (B,C,H,W), "patient": [...], "volume": [...], ...}``.

    Args:
        dataset: ``dataset[i]`` is a dict with ``image_key`` ((C, H, W) float in [0, 1]),
            ``patient`` and ``volume`` for ``sampler``'s ``records[i]``.
        sampler: the batch sampler (its batch layout is what the loss reads).
        augmentation: a dictionary transform on ``image_key`` applied independently for
            each view; default :func:`~alseg_monai.contrastive.paper_augmentation`.
        num_workers: loader worker processes.
        seed: seeds the loader's generator (per-worker augmentation seeds derive from it).
        image_key: the image key of the dataset's items.
    """
    views = TwoViewsd(image_key, augmentation=augmentation, view_keys=_VIEWS)
    generator = torch.Generator().manual_seed(derive_seed(seed, "loader"))
    return DataLoader(
        UntrackedDataset(data=dataset, transform=views),
        batch_sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        pin_memory=False,
    )


def create_contrastive_trainer(
    encoder: SimCLREncoder,
    objective: ContrastiveObjective,
    optimizer: torch.optim.Optimizer,
    roles: Sequence[str],
    device: str | torch.device = "cpu",
    amp: bool | None = None,
    channels_last: bool | None = None,
) -> Engine:
    """An ignite engine whose iteration trains ``encoder`` on one batch of the loader.

    Both views go through the encoder in one (2B, C, H, W) pass; the projections are
    split into ``z`` (view 1) and ``z_aug`` (view 2) and scored by ``objective`` with the
    group ids of :func:`batch_group_ids` (``roles``: the sampler's :attr:`roles`).
    The engine's output is ``{"loss": float, <term>: float}``.

    ``amp`` and ``channels_last`` default to True on CUDA and False elsewhere; the loss
    is always computed in float32. ``engine.grad_scaler`` holds the AMP grad scaler.

    In a distributed run (see :mod:`alseg_monai.utils.distributed`) the forward pass goes
    through ``DistributedDataParallel``: each rank's loss is over its own batch and the
    gradients are averaged across ranks, so every rank takes the same step. When the
    engine completes, rank 0's parameters and BatchNorm statistics are copied to every
    rank, so all ranks hold the model rank 0 saves.
    """
    device = torch.device(device)
    amp = device.type == "cuda" if amp is None else bool(amp)
    channels_last = device.type == "cuda" if channels_last is None else bool(channels_last)
    if amp and device.type != "cuda":
        raise ConfigError(f"create_contrastive_trainer: amp needs a CUDA device, got {device}")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    encoder.to(device=device, memory_format=memory_format)
    network = ddp_wrap(encoder, device)
    objective.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    roles = tuple(roles)

    def iteration(engine: Engine, batch: Mapping[str, Any]) -> dict[str, float]:
        network.train()
        x = torch.cat([torch.as_tensor(batch[v]) for v in _VIEWS]).to(device, non_blocking=True)
        x = x.contiguous(memory_format=memory_format)
        ids = {k: v.to(device) for k, v in batch_group_ids(batch["patient"], batch["volume"], roles).items()}
        with torch.autocast(device_type=device.type, enabled=amp):
            projections = network(x)
        z, z_aug = projections.float().chunk(2)
        terms = objective(z, z_aug, **ids)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        return {name: value.item() for name, value in terms.items()}

    engine = Engine(iteration)
    engine.grad_scaler = scaler
    # Each rank's BatchNorm statistics follow its own batches: leave every rank with rank 0's.
    engine.add_event_handler(Events.COMPLETED, lambda _: broadcast_module(encoder))
    return engine


def attach_training_handlers(
    engine: Engine,
    sampler: GroupBatchSampler,
    loader: DataLoader,
    to_save: Mapping[str, Any],
    output_dir: str | os.PathLike,
    terms: Sequence[str],
    seed: int = 0,
    progress: bool = True,
    tensorboard: bool = True,
    log_every: int = 10,
    keep_checkpoints: int = 2,
) -> Checkpoint:
    """Attach the training's handlers to ``engine``; returns the checkpoint handler.

    - :class:`SetEpochHandler` and :class:`AugmentationSeedHandler` at every epoch start;
    - ``engine.state.metrics[name]``: the epoch mean of ``"loss"`` and each of ``terms``;
    - MONAI ``StatsHandler`` (logger ``alseg_monai.contrastive.stats``, stdout; iterations every
      ``log_every``, epochs always) and ``TensorBoardStatsHandler`` (``output_dir/tensorboard``);
    - an ignite ``ProgressBar`` when ``progress``;
    - an ignite ``Checkpoint`` of ``to_save`` (and itself) at every epoch end, written
      atomically to ``output_dir/checkpoint_<epoch>.pt``, keeping the last ``keep_checkpoints``.

    In a distributed run only rank 0 logs, shows progress and writes TensorBoard logs and
    checkpoints; the epoch averages are over every rank's batches.
    """
    if keep_checkpoints < 1 or log_every < 1:
        raise ConfigError(
            "attach_training_handlers: keep_checkpoints and log_every must be >= 1, "
            f"got {keep_checkpoints}, {log_every}"
        )
    SetEpochHandler(sampler).attach(engine)
    AugmentationSeedHandler(loader, seed).attach(engine)
    for name in ("loss", *terms):
        Average(output_transform=lambda out, name=name: out[name]).attach(engine, name)
    if is_main_process():
        _attach_logging(engine, output_dir, progress, tensorboard, log_every)
    checkpoint = Checkpoint(
        dict(to_save),
        ResumableDiskSaver(output_dir),
        n_saved=keep_checkpoints,
        global_step_transform=lambda eng, _: eng.state.epoch,
        filename_pattern="{name}_{global_step}.{ext}",
        include_self=True,
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    return checkpoint


def _attach_logging(engine: Engine, output_dir: str | os.PathLike, progress: bool, tensorboard: bool,
                    log_every: int) -> None:
    StatsHandler(
        name="alseg_monai.contrastive.stats",
        output_transform=lambda out: out,
        iteration_log=lambda _, iteration: iteration % log_every == 0,
    ).attach(engine)
    if tensorboard:
        board = TensorBoardStatsHandler(log_dir=str(Path(output_dir) / "tensorboard"), output_transform=lambda out: out)
        board.attach(engine)
        engine.add_event_handler(Events.COMPLETED, lambda _: board.close())
    if progress:
        ProgressBar(persist=False, disable=bar_disable(True)).attach(
            engine, output_transform=lambda out: {"loss": out["loss"]}
        )


def resume_from_checkpoint(output_dir: str | os.PathLike, to_load: Mapping[str, Any]) -> Path | None:
    """Load the latest ``checkpoint_<epoch>.pt`` of ``output_dir`` into ``to_load``; return its path, or None.

    ``to_load`` must name the objects as they were saved (see :func:`attach_training_handlers`).
    In a distributed run every rank loads the checkpoint rank 0 finds.

    Raises:
        DataError: the checkpoint does not fit the objects (e.g. another encoder size).
    """
    path = broadcast_object(latest_checkpoint(output_dir) if is_main_process() else None)
    if path is None:
        return None
    try:
        Checkpoint.load_objects(to_load=dict(to_load), checkpoint=path)
    except (KeyError, RuntimeError, ValueError) as err:
        raise DataError(f"cannot resume from {path}: it does not match this training setup ({err})") from err
    logger.info("resumed encoder training from %s", path)
    return path


def train_encoder(
    dataset: Dataset,
    records: Sequence[Mapping],
    output_dir: str | os.PathLike,
    epochs: int = 100,
    batch_size: int | None = None,
    groupings: Sequence[str] = ("patient", "volume"),
    objective: ContrastiveObjective | None = None,
    augmentation: Compose | None = None,
    encoder: SimCLREncoder | None = None,
    lr: float = 3e-4,
    weight_decay: float = 1e-6,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    amp: bool | None = None,
    feature_dim: int = 512,
    sampler: Callable[..., GroupBatchSampler] | None = None,
    optimizer: Callable[..., torch.optim.Optimizer] | None = None,
    resume: bool = True,
    progress: bool = True,
    log_every: int = 10,
    handlers: Sequence[Any] = (),
) -> SimCLREncoder:
    """Train a SimCLR encoder with the group contrastive objective (paper Eq. 5) and save it.

    Writes ``output_dir/encoder.pt`` (the encoder's state dict), per-epoch checkpoints
    ``checkpoint_<epoch>.pt`` and TensorBoard logs. With ``resume`` a run continues from
    the latest checkpoint in ``output_dir`` (a finished run is loaded, not retrained).

    Distributed (``torchrun``, see docs/distributed.md): each rank trains on its own,
    disjoint batches of the :class:`GroupBatchSampler` (``num_replicas`` = world size)
    through ``DistributedDataParallel``; an epoch has ``1 / world size`` as many
    iterations, each of ``world size x batch_size`` slices in all. Augmentations are
    seeded per rank. Rank 0 writes every file; every rank resumes from the same
    checkpoint and returns the same encoder. Resume with the same number of processes.

    Args:
        dataset: ``dataset[i]`` is a dict with ``"image"`` ((C, H, W) float in [0, 1]),
            ``"patient"`` and ``"volume"`` of ``records[i]`` (e.g. ``alseg_monai.data.SliceDataset``).
        records: slice records (``patient``, ``volume``, ``slice``), aligned with ``dataset``.
        output_dir: where weights, checkpoints and logs go.
        epochs: training epochs (the paper: 100).
        batch_size: slices per batch; default the paper's (9 for two groupings, else 8).
        groupings: the sampler's groupings, see :class:`GroupBatchSampler`.
        objective: the loss; default :class:`ContrastiveObjective` (the paper's ACDC weights).
        augmentation: one view's augmentation; default :func:`paper_augmentation`.
        encoder: the network; default ``SimCLREncoder(in_channels=<channels of dataset[0]>,
            feature_dim)``, initialised from ``seed``.
        lr: Adam learning rate (3e-4).
        weight_decay: Adam weight decay (1e-6).
        seed: seeds the encoder initialisation, the sampler and the augmentation (per rank
            when distributed).
        device: torch device; CUDA turns on AMP and channels-last.
        num_workers: loader worker processes.
        amp: mixed precision; default: on for CUDA.
        feature_dim: width of the default encoder's features (512: the paper's ResNet-18;
            a smaller multiple of 8 narrows every layer, for CPU runs).
        sampler: ``sampler(records, seed=, num_replicas=, rank=) -> GroupBatchSampler`` (a
            bundle's ``sampler`` component); default one of ``batch_size`` and ``groupings``.
        optimizer: ``optimizer(parameters)``; default Adam with ``lr`` and ``weight_decay``.
        resume: continue from the latest checkpoint in ``output_dir`` when there is one.
        progress: show a progress bar.
        log_every: log the loss terms every this many iterations.
        handlers: extra handlers (objects with ``attach(engine)``), e.g. early stopping.

    Returns:
        the trained encoder, in eval mode.

    Raises:
        DataError: ``dataset`` and ``records`` differ in length.
        ConfigError: bad settings (see the building blocks), or a slice-group loss
            without the ``"slice"`` grouping.
    """
    if len(dataset) != len(records):
        raise DataError(f"train_encoder: dataset has {len(dataset)} items but records has {len(records)}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"train_encoder: epochs must be a positive integer, got {epochs!r}")
    output_dir = Path(output_dir)
    if is_main_process():
        output_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(output_dir)

    objective = objective if objective is not None else ContrastiveObjective()
    if sampler is None:
        sampler = functools.partial(GroupBatchSampler, batch_size=batch_size, groupings=groupings)
    sampler = sampler(records, seed=derive_seed(seed, "sampler"), num_replicas=world_size(), rank=rank())
    if "slice" in objective.active_terms and "adjacent" not in sampler.roles:
        raise ConfigError(
            "train_encoder: slice_weight > 0 needs 'slice' in groupings (adjacent-slice pairs in the batch)"
        )
    if len(sampler) == 0:
        raise ConfigError(
            f"train_encoder: {len(records)} slices give no batch of {sampler.batch_size} per process "
            f"({world_size()} process(es)); use a smaller batch_size or fewer processes"
        )
    if encoder is None:
        encoder = _seeded_encoder(dataset, seed, feature_dim)
    if optimizer is None:
        optimizer = functools.partial(torch.optim.Adam, lr=lr, weight_decay=weight_decay)
    optimizer = optimizer(encoder.parameters())
    augmentation_seed = rank_seed(seed)
    loader = build_contrastive_loader(dataset, sampler, augmentation, num_workers=num_workers, seed=augmentation_seed)
    engine = create_contrastive_trainer(encoder, objective, optimizer, sampler.roles, device=device, amp=amp)

    to_save: dict[str, Any] = {"encoder": encoder, "optimizer": optimizer, "trainer": engine, "sampler": sampler}
    if engine.grad_scaler.is_enabled():
        to_save["grad_scaler"] = engine.grad_scaler
    checkpoint = attach_training_handlers(
        engine, sampler, loader, to_save, output_dir, objective.active_terms, seed=augmentation_seed, progress=progress,
        log_every=log_every,
    )
    for handler in handlers:
        handler.attach(engine)
    if resume:
        resume_from_checkpoint(output_dir, {**to_save, "checkpointer": checkpoint})
    if engine.state.epoch < epochs:
        engine.run(loader, max_epochs=epochs)
    else:
        logger.info("encoder training already complete (%d epochs) in %s", engine.state.epoch, output_dir)
    encoder.eval()
    if is_main_process():
        torch_save_atomic(encoder.state_dict(), output_dir / ENCODER_FILE)
    return encoder


def _seeded_encoder(dataset: Dataset, seed: int, feature_dim: int = 512) -> SimCLREncoder:
    first = dataset[0]
    if "image" not in first or torch.as_tensor(first["image"]).ndim != 3:
        raise DataError("train_encoder: dataset items must hold an 'image' of shape (C, H, W)")
    # A forked RNG keeps the caller's global torch stream untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "encoder"))
        return SimCLREncoder(in_channels=int(torch.as_tensor(first["image"]).shape[0]), feature_dim=int(feature_dim))



@dataclass(frozen=True)
class EncoderSpec:
    """Everything that trains one contrastive encoder of an experiment (an entry of the
    bundle's ``encoders``): the paper's GCL encoder, or its NT-Xent-only ablation.

    Attributes:
        network: the encoder (``encoder_def``): a module, or a factory (``"_mode_":
            "partial"``), built fresh from the run's seed (see
            :func:`~alseg_monai.segmentation.build_network`).
        loss: the contrastive objective (``contrastive_loss``, paper Eq. 5).
        sampler: ``sampler(records, seed=, num_replicas=, rank=)`` (``sampler``, a
            :class:`GroupBatchSampler` factory with its groupings and batch size).
        epochs: training epochs (paper 100).
        optimizer: ``optimizer(parameters)`` (paper Adam, lr 3e-4, weight decay 1e-6).
        transforms: one view's augmentation (``contrastive_transforms``); None: the paper's.
        num_workers: loader workers of its training (None: the experiment's).
    """

    network: Any
    loss: ContrastiveObjective
    sampler: Callable[..., GroupBatchSampler]
    epochs: int
    optimizer: Callable[..., torch.optim.Optimizer]
    transforms: Callable | None = None
    num_workers: int | None = None

    def groupings(self) -> tuple[str, ...]:
        """The sampler's groupings (``patient``, ``volume``, ``slice``)."""
        return tuple(getattr(self.sampler, "keywords", {}).get("groupings", ("patient", "volume")))

    def without_patient_grouping(self) -> EncoderSpec:
        """This encoder without the patient grouping and its loss term: on datasets with one
        volume per patient the patient group is the volume group (the paper drops it)."""
        if not isinstance(self.sampler, functools.partial):
            raise ConfigError("an encoder's sampler must be a functools.partial of GroupBatchSampler (a bundle "
                              '"_mode_": "callable" component) to drop its patient grouping')
        groupings = [g for g in self.groupings() if g != "patient"]
        sampler = functools.partial(self.sampler.func, *self.sampler.args,
                                    **{**self.sampler.keywords, "groupings": groupings})
        weights = {f"{k}_weight": (0.0 if k == "patient" else v) for k, v in self.loss.weights.items()}
        loss = ContrastiveObjective(**weights, temperature=self.loss.loss.temperature,
                                    symmetric=self.loss.loss.symmetric)
        return replace(self, sampler=sampler, loss=loss)

    def train(self, dataset: Dataset, records: Sequence[Mapping], output_dir: str | os.PathLike, seed: int,
              device: str | torch.device = "cpu", num_workers: int = 0, progress: bool = True,
              threads: int | None = None) -> SimCLREncoder:
        """Train (or resume, or load) this encoder in ``output_dir``: :func:`train_encoder`,
        with at most ``threads`` CPU threads (None: the process's).

        The thread count is the machine's, not the encoder's (it is not part of the
        spec): it changes the floating-point order of the CPU convolutions, so weights
        (and the picks made with them) are not bit-identical across thread counts, and it decides
        how the training copes with other processes (docs/benchmarks.md: on a 2-core
        machine two threads train 1.8x faster than one when idle, and take 1.9x as long
        as one beside another CPU-bound process).
        """
        with thread_limit(check_threads("threads", threads)):
            return train_encoder(
                dataset, records, output_dir, epochs=int(self.epochs), objective=self.loss,
                augmentation=self.transforms, encoder=build_network(self.network, derive_seed(seed, "encoder")),
                seed=seed, device=device, progress=progress, sampler=self.sampler, optimizer=self.optimizer,
                num_workers=num_workers if self.num_workers is None else int(self.num_workers),
            )
