"""Logging handlers of a round's engines, for the bundle's handler lists.

MONAI's ``StatsHandler`` and ``TensorBoardStatsHandler`` with the settings a round
needs, as classes a bundle names with ``_target_``: the trainer logs its loss terms
every ``log_interval`` iterations; the validator logs its metric after each pass
numbered by the trainer's iteration (MONAI's default numbers it by the validator's own
epoch, always 1 in a round).
"""

from __future__ import annotations

import os

from ignite.engine import Engine
from monai.handlers import StatsHandler, TensorBoardStatsHandler

from ..errors import ConfigError
from .handlers import loss_terms

__all__ = ["TrainStatsHandler", "ValidationStatsHandler", "ValidationTensorBoardHandler"]

# MONAI configures a StatsHandler's logger its own way (INFO, to stdout, not propagated):
# a leaf of its own leaves the package's module loggers alone; logging.conf may reset it.
STATS_LOGGER = "alseg_monai.segmentation.stats"


class _Every:
    """``iteration_log`` of a StatsHandler: every ``interval`` iterations (a class, not a
    lambda, so that the handler pickles into the parallel chain workers)."""

    def __init__(self, interval: int) -> None:
        self.interval = int(interval)
        if self.interval < 1:
            raise ConfigError(f"log_interval: expected a positive number of iterations, got {interval}")

    def __call__(self, _engine: Engine, iteration: int) -> bool:
        return iteration % self.interval == 0


class TrainStatsHandler(StatsHandler):
    """The trainer's loss terms (``loss``; DMPLS also ``pce``, ``pseudo_dice``) every ``log_interval`` iterations."""

    def __init__(self, log_interval: int = 50, name: str = STATS_LOGGER) -> None:
        super().__init__(iteration_log=_Every(log_interval), epoch_log=False, output_transform=loss_terms, name=name)


class ValidationStatsHandler(StatsHandler):
    """The validator's metrics after each pass, at the ``trainer``'s iteration."""

    def __init__(self, trainer: Engine, name: str = STATS_LOGGER) -> None:
        super().__init__(iteration_log=False, global_epoch_transform=lambda _epoch: trainer.state.iteration, name=name)


class ValidationTensorBoardHandler(TensorBoardStatsHandler):
    """The validator's metrics in TensorBoard under ``log_dir``, at the ``trainer``'s iteration."""

    def __init__(self, trainer: Engine, log_dir: str | os.PathLike) -> None:
        super().__init__(log_dir=str(log_dir), iteration_log=False,
                         global_epoch_transform=lambda _epoch: trainer.state.iteration)
