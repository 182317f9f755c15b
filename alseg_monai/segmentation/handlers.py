"""ignite / MONAI handlers of a segmentation round (paper Section 3.2.2).

Each round's models are validated on whole validation volumes every K iterations
(200 in the authors' runs) and the best one is kept; each behaviour here is a handler
attached to an engine event:

- :class:`IterationValidationHandler`: runs the validator every K trainer iterations
  and once more at the end when the last iteration is not a multiple of K.
- :class:`BestCheckpointSaver`: an ignite ``Checkpoint`` on the validator that keeps
  the network with the best validation mean Dice, written atomically.
- :class:`RestoreBestHandler`: loads that checkpoint back when training completes.
- :func:`poly_lr_handler`: poly learning-rate decay ``lr (1 - t / T) ** power`` per iteration.
- :func:`attach_logging`: ignite ProgressBar, MONAI StatsHandler and TensorBoardStatsHandler.

For distributed (``torchrun``) rounds: :class:`BroadcastModelHandler` gives every rank
rank 0's model before each validation pass, :class:`ReshuffleHandler` redraws the
``DistributedSampler``'s order whenever the loader restarts, checkpoints are written by
rank 0 only, and :class:`RestoreBestHandler` waits for rank 0's file before loading it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ProgressBar
from monai.engines import Evaluator
from monai.handlers import LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler
from torch import nn

from ..errors import ConfigError, DataError
from ..utils import AtomicDiskSaver, barrier, broadcast_module

__all__ = [
    "AtomicDiskSaver",
    "BestCheckpointSaver",
    "BroadcastModelHandler",
    "IterationValidationHandler",
    "ReshuffleHandler",
    "RestoreBestHandler",
    "attach_logging",
    "loss_terms",
    "poly_lr_handler",
]

VAL_METRIC = "val_mean_dice"


class IterationValidationHandler(ValidationHandler):
    """MONAI ``ValidationHandler`` at iteration level that also validates the final model.

    Without the final pass, training for a number of iterations that is not a
    multiple of ``interval`` would never score its last updates.
    """

    def __init__(self, interval: int, validator: Evaluator) -> None:
        if int(interval) < 1:
            raise ConfigError(f"val_interval: expected a positive number of iterations, got {interval}")
        super().__init__(interval=int(interval), validator=validator, epoch_level=False)

    def attach(self, engine: Engine) -> None:
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self._validate_last)

    def _validate_last(self, engine: Engine) -> None:
        if engine.state.iteration % self.interval:
            self(engine)


class BestCheckpointSaver:
    """Keep the network with the best validation score (ignite ``Checkpoint``, ``n_saved=1``).

    Attach to the validator; a checkpoint is written (atomically) only when the score
    improves strictly, so the earliest of equal scores is kept. The file name carries
    the trainer iteration and the score.

    Args:
        network: the network to save.
        save_dir: folder of the checkpoint.
        step_engine: the trainer, whose iteration numbers the checkpoints.
        metric_name: the validator metric to maximise.
    """

    def __init__(self, network: nn.Module, save_dir: str | os.PathLike, step_engine: Engine,
                 metric_name: str = VAL_METRIC) -> None:
        self.save_dir = Path(save_dir)
        self.metric_name = metric_name
        self.checkpoint = Checkpoint(
            {"network": network}, AtomicDiskSaver(save_dir), filename_prefix="best", n_saved=1,
            score_function=self._score, score_name=metric_name,
            global_step_transform=lambda *_: step_engine.state.iteration,
        )

        self.best_score: float | None = None

    def _score(self, engine: Engine) -> float:
        return float(engine.state.metrics[self.metric_name])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        before = self.checkpoint.last_checkpoint
        self.checkpoint(engine)
        if self.checkpoint.last_checkpoint != before:  # names carry the iteration: a new name is a new best
            self.best_score = self._score(engine)

    @property
    def best_path(self) -> Path | None:
        """Path of the best checkpoint so far (None before the first validation)."""
        last = self.checkpoint.last_checkpoint
        return None if last is None else self.save_dir / last


class RestoreBestHandler:
    """When the trainer completes, load the best checkpoint of ``saver`` into ``network``.

    Attach after the validation handler, so the final validation is counted. In a
    distributed run every rank loads the file rank 0 wrote, after a barrier.
    """

    def __init__(self, saver: BestCheckpointSaver, network: nn.Module) -> None:
        self.saver, self.network = saver, network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        path = self.saver.best_path
        if path is None:
            raise DataError("RestoreBestHandler: no checkpoint was saved; did validation run?")
        barrier()
        state = torch.load(path, map_location=next(self.network.parameters()).device, weights_only=True)
        self.network.load_state_dict(state)


class BroadcastModelHandler:
    """Before each validation pass, copy rank 0's parameters and buffers to every rank.

    Data-parallel training keeps the parameters equal but lets each rank's BatchNorm
    statistics follow its own batches; validating (on a share of the volumes per rank)
    and checkpointing must use one model, rank 0's. A no-op in a single process.
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        broadcast_module(self.network)


class ReshuffleHandler:
    """Advance ``sampler``'s epoch whenever the trainer's data loader restarts.

    A round is one ignite epoch of ``iterations`` iterations, during which the loader
    restarts as often as needed. A ``DistributedSampler`` draws its order from
    ``(seed, epoch)``, which MONAI sets once per ignite epoch: without this every pass
    over the labelled slices would repeat the first one's order.
    """

    def __init__(self, sampler: Any) -> None:
        if not callable(getattr(sampler, "set_epoch", None)):
            raise ConfigError(f"ReshuffleHandler: {type(sampler).__name__} has no set_epoch(epoch) method")
        self.sampler = sampler

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.DATALOADER_STOP_ITERATION, self)

    def __call__(self, engine: Engine) -> None:
        self.sampler.set_epoch(self.sampler.epoch + 1)


def poly_lr_handler(optimizer: torch.optim.Optimizer, iterations: int, power: float = 0.9) -> LrScheduleHandler:
    """MONAI ``LrScheduleHandler`` stepping ``lr_t = lr_0 (1 - t / iterations) ** power`` every iteration."""
    if power <= 0:
        raise ConfigError(f"poly_power: expected a positive exponent, got {power}")
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=int(iterations), power=power)
    return LrScheduleHandler(scheduler, print_lr=False, epoch_level=False)


def loss_terms(output: Any) -> dict[str, float] | None:
    """The scalar loss terms of a trainer iteration's output dict (``loss`` and any extra terms)."""
    if not isinstance(output, Mapping):
        return None
    return {k: v.detach() for k, v in output.items()
            if k in ("loss", "pce", "pseudo_dice") and isinstance(v, torch.Tensor) and v.numel() == 1}


def attach_logging(
    trainer: Engine,
    evaluator: Engine,
    log_interval: int = 50,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: bool = True,
    logger_name: str = "alseg_monai.segmentation.stats",
) -> None:
    """Attach progress and logging handlers.

    The trainer logs its loss terms every ``log_interval`` iterations through MONAI
    ``StatsHandler`` and, when
    ``tensorboard_dir`` is given, ``TensorBoardStatsHandler``; the validator logs its
    metrics after each pass, at the trainer's iteration. ``progress`` adds an ignite
    ``ProgressBar`` (tqdm).

    ``logger_name`` is the StatsHandler logger. MONAI configures it its own way (INFO,
    printed to stdout, not propagated), so it is a leaf of its own that leaves the
    package's module loggers alone; a bundle's logging.conf can reconfigure it.
    """
    interval = max(1, int(log_interval))

    def at_trainer_iteration(_epoch: int) -> int:
        return trainer.state.iteration

    StatsHandler(iteration_log=lambda _engine, iteration: iteration % interval == 0, epoch_log=False,
                 output_transform=loss_terms, name=logger_name).attach(trainer)
    StatsHandler(iteration_log=False, global_epoch_transform=at_trainer_iteration, name=logger_name).attach(evaluator)
    if tensorboard_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(tensorboard_dir))
        TensorBoardStatsHandler(writer, iteration_log=interval, epoch_log=False,
                                output_transform=loss_terms).attach(trainer)
        TensorBoardStatsHandler(writer, iteration_log=False,
                                global_epoch_transform=at_trainer_iteration).attach(evaluator)
        trainer.add_event_handler(Events.COMPLETED, lambda _: writer.close())
    if progress:
        ProgressBar(persist=False).attach(trainer, output_transform=lambda out: {"loss": float(out["loss"].detach())})
