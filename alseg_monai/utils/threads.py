"""Thread pools of a block of work: how many threads a CPU-bound step may use.

Many small parallel operations (a K-Center pick, a training step of a small network)
stall whenever another process holds one of the cores their threads wait on
(docs/benchmarks.md, "Selection under CPU contention"), so selection runs single-threaded and the
encoder's training takes its thread count from the config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

from ..errors import ConfigError

__all__ = ["check_threads", "thread_limit"]


def check_threads(name: str, threads: int | None) -> int | None:
    """``threads`` if it is None or a positive integer, else :class:`ConfigError` naming ``name``."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{name}={threads!r}; expected a positive integer, or null for the process's threads")
    return threads


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` threads in every BLAS and OpenMP pool loaded
    in the process (numpy's and faiss's OpenBLAS, faiss's and torch's OpenMP, through
    threadpoolctl) and in torch's intra-op pool; both are restored on exit, also on error.
    ``None`` leaves them alone. The limits are process-wide while the block runs."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    with threadpool_limits(limits=threads):
        torch.set_num_threads(min(previous, threads))
        try:
            yield
        finally:
            torch.set_num_threads(previous)
