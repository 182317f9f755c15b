"""ignite / MONAI handlers of a segmentation round (paper Section 3.2.2).

Each round's models are validated on whole validation volumes every K iterations
(200 in the authors' runs) and the best one is kept; each behaviour here is a handler
attached to an engine event:

- :class:`IterationValidationHandler`: runs the validator every K trainer iterations
  and once more at the end when the last iteration is not a multiple of K.
- :class:`BestCheckpointSaver`: an ignite ``Checkpoint`` on the validator that keeps
  the network with the best validation mean Dice, written atomically (ignite ``DiskSaver``).
- :class:`RestoreBestHandler`: loads that checkpoint back when training completes
  (``Checkpoint.load_objects``).

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
from ignite.handlers import Checkpoint, DiskSaver, global_step_from_engine
from monai.engines import Evaluator
from monai.handlers import ValidationHandler
from torch import nn

from ..errors import ConfigError, DataError
from ..utils import barrier, broadcast_module

__all__ = [
    "BestCheckpointSaver",
    "IterationValidationHandler",
    "loss_terms",
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


class BestCheckpointSaver(Checkpoint):
    """Keep the network with the best validation score: an ignite ``Checkpoint`` (``n_saved=1``)
    writing through ``DiskSaver(save_dir, atomic=True, require_empty=False)``.

    Attach to the validator; a checkpoint is written only when the score improves
    strictly (ignite's ``greater_or_equal=False``), so the earliest of equal scores is
    kept. The file is ``best_network_<trainer iteration>_<metric_name>=<score:.4f>.pt``.
    In a distributed run rank 0 writes it.

    Args:
        network: the network to save.
        save_dir: folder of the checkpoint.
        step_engine: the trainer, whose iteration numbers the checkpoints.
        metric_name: the validator metric to maximise.
    """

    def __init__(self, network: nn.Module, save_dir: str | os.PathLike, step_engine: Engine,
                 metric_name: str = VAL_METRIC) -> None:
        super().__init__(
            {"network": network}, DiskSaver(save_dir, atomic=True, require_empty=False), filename_prefix="best",
            score_function=lambda engine: float(engine.state.metrics[metric_name]), score_name=metric_name,
            n_saved=1, global_step_transform=global_step_from_engine(step_engine, Events.ITERATION_COMPLETED),
        )

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    @property
    def best_score(self) -> float | None:
        """The best validation score so far (None before the first validation)."""
        return float(self._saved[-1].priority) if self._saved else None

    @property
    def best_path(self) -> Path | None:
        """Path of the best checkpoint so far (None before the first validation)."""
        return self.last_checkpoint


class RestoreBestHandler:
    """When the trainer completes, load the best checkpoint of ``saver`` into ``network``
    (ignite ``Checkpoint.load_objects``).

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
        # Loaded onto the network's device: rank 0 saved from its own GPU.
        state = torch.load(path, map_location=next(self.network.parameters()).device, weights_only=True)
        Checkpoint.load_objects({"network": self.network}, state)


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


def loss_terms(output: Any) -> dict[str, float] | None:
    """The scalar loss terms of a trainer iteration's output dict (``loss`` and any extra terms)."""
    if not isinstance(output, Mapping):
        return None
    return {k: v.detach() for k, v in output.items()
            if k in ("loss", "pce", "pseudo_dice") and isinstance(v, torch.Tensor) and v.numel() == 1}
