"""When to draw progress bars: on a terminal only, so that a log file gets no bar debris."""

from __future__ import annotations

from .distributed import is_main_process
from .flags import as_bool

__all__ = ["bar_disable"]


def bar_disable(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar the user asked for with ``progress``.

    ``None`` is tqdm's own "disable unless the output stream is a terminal"; other ranks
    of a distributed run never draw one. Files keep the per-epoch and per-round log lines.
    """
    return None if as_bool(progress, "progress") and is_main_process() else True
