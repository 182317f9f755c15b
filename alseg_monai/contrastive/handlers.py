"""ignite handlers of the encoder training: per-epoch redraws and resumable atomic checkpoints."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol

import ignite.distributed as idist
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.data.utils import set_rnd
from torch.utils.data import DataLoader

from ..utils import derive_seed

__all__ = []


class _HasSetEpoch(Protocol):
    def set_epoch(self, epoch: int) -> None: ...


class SetEpochHandler:
    """Call ``sampler.set_epoch(e)`` when epoch ``e`` starts (0-based), so batches are redrawn.

    MONAI's trainers only do this for a ``DistributedSampler``; a
    :class:`~alseg_monai.contrastive.GroupBatchSampler` needs it every epoch. On a
    resumed engine the epoch comes from the restored state, so the sampler resumes too.
    """

    def __init__(self, sampler: _HasSetEpoch) -> None:
        self.sampler = sampler

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.sampler.set_epoch(engine.state.epoch - 1)


class AugmentationSeedHandler:
    """Reseed the loader's random augmentation at the start of every epoch from ``(seed, epoch)``.

    In the main process (``num_workers=0``) the dataset's MONAI randomizable transforms
    are reseeded directly; with workers, the loader's generator is, from which
    ``monai.data.DataLoader`` seeds each worker. Either way an epoch's augmentations
    depend only on the seed and the epoch, so a resumed run draws what an
    uninterrupted one would.
    """

    def __init__(self, loader: DataLoader, seed: int) -> None:
        self.loader = loader
        self.seed = int(seed)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch - 1
        if self.loader.generator is not None:
            self.loader.generator.manual_seed(derive_seed(self.seed, "loader", epoch))
        set_rnd(self.loader.dataset, derive_seed(self.seed, "augmentation", epoch))


class ResumableDiskSaver(DiskSaver):
    """ignite ``DiskSaver(dirname, atomic=True, require_empty=False)`` whose ``remove`` accepts a file already gone.

    Kept because a run killed after ignite's ``Checkpoint`` removed the oldest file but
    before the new one landed resumes with that file still listed; ignite's ``remove``
    would then fail at the next epoch end. Written on rank 0 only, as ignite's.
    """

    def __init__(self, dirname: str | os.PathLike) -> None:
        super().__init__(dirname, atomic=True, require_empty=False)

    def remove(self, filename: str) -> None:
        if idist.get_rank() == self.save_on_rank:
            (self.dirname / filename).unlink(missing_ok=True)


# Hand-written: ignite's Checkpoint lists its files in memory and MONAI's CheckpointLoader takes a path.
def latest_checkpoint(dirname: str | os.PathLike, prefix: str = "checkpoint") -> Path | None:
    """The ``<prefix>_<step>.pt`` file of ``dirname`` with the largest step, or None."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)\.pt")
    found: list[tuple[int, Any]] = []
    if Path(dirname).is_dir():
        for path in Path(dirname).iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return max(found)[1] if found else None
