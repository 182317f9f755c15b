"""An ignite checkpoint save handler that never leaves a half-written file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ignite.handlers.checkpoint import BaseSaveHandler

from .distributed import is_main_process, main_process_only
from .io import torch_save_atomic

__all__ = ["AtomicDiskSaver"]


class AtomicDiskSaver(BaseSaveHandler):
    """ignite save handler writing checkpoints with :func:`alseg_monai.utils.torch_save_atomic`,
    so a crash never leaves a half-written checkpoint under the final name. ignite's
    ``Checkpoint`` calls it on every rank; it writes and removes files on rank 0 only."""

    def __init__(self, dirname: str | os.PathLike) -> None:
        self.dirname = Path(dirname)
        if is_main_process():
            self.dirname.mkdir(parents=True, exist_ok=True)

    @main_process_only
    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        torch_save_atomic(checkpoint, self.dirname / filename)

    @main_process_only
    def remove(self, filename: str) -> None:
        (self.dirname / filename).unlink(missing_ok=True)
