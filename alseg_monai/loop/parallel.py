"""Run an experiment's (strategy, repeat) chains in parallel worker processes.

The rounds of one chain depend on each other (a round selects given the slices
labelled before it); different chains do not. On a CPU, the small per-round networks
use many threads poorly (one 2-thread process trains the paper's UNet at 64 x 64 only
1.24x faster than one thread), so independent chains in one-thread workers use the
cores better. Each worker re-reads the dataset and the slice cache from disk, runs
whole chains, and writes each round's files as the sequential loop does; the resumable
on-disk state is the same, so an interrupted parallel run resumes with any ``workers``.

Workers are spawned (not forked: forking a process that has run OpenMP regions is not
safe), their log records travel to this process's handlers through a queue, and the
first failure stops the run and is raised here.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import pickle
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .experiment import ActiveLearningExperiment

__all__ = []

logger = logging.getLogger(__name__)

_EXPERIMENT: ActiveLearningExperiment | None = None


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Torch threads each of ``workers`` processes gets out of ``threads`` (default: this process's)."""
    threads = torch.get_num_threads() if threads is None else threads
    return max(1, int(threads) // max(1, int(workers)))


def _exit_with_parent() -> None:
    """Have Linux stop this worker when the process that started it dies (a killed run
    must not leave its chains training on; the next run resumes them)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _init_worker(pickled: bytes, queue, level: int, threads: int) -> None:
    global _EXPERIMENT
    _exit_with_parent()
    experiment = pickle.loads(pickled)
    torch.set_num_threads(threads)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)
    experiment._worker = True
    experiment.prepare()
    _EXPERIMENT = experiment


def _run_chain(spec_index: int, repeat: int) -> tuple[int, int]:
    assert _EXPERIMENT is not None, "worker not initialised"
    _EXPERIMENT.run_chain(spec_index, repeat)
    return spec_index, repeat


def run_chains(experiment: ActiveLearningExperiment, chains: Sequence[tuple[int, int]], workers: int) -> None:
    """Run ``experiment.run_chain(spec_index, repeat)`` for every chain in ``workers`` processes.

    Raises:
        the first exception a chain raised (the other workers are stopped; every round
        finished so far stays on disk).
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    root = logging.getLogger()
    listener = logging.handlers.QueueListener(queue, *root.handlers, respect_handler_level=True)
    threads = threads_per_worker(workers)
    logger.info("running %d chains (strategy x repeat) in %d worker processes of %d thread(s)",
                len(chains), workers, threads)
    listener.start()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(_pickled(experiment), queue, root.getEffectiveLevel(), threads))
    completed = False
    try:
        futures = [pool.submit(_run_chain, index, repeat) for index, repeat in chains]
        pending, done_count = set(futures), 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                index, repeat = future.result()  # re-raises a chain's error here
                done_count += 1
                logger.info("chain done: %s repeat %d (%d/%d)", experiment.specs[index].name, repeat, done_count,
                            len(futures))
        completed = True
    finally:
        if not completed:
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()


def _pickled(experiment: ActiveLearningExperiment) -> bytes:
    # Plain pickle, not multiprocessing's: its torch reductions hand tensors over through
    # shared-memory file descriptors, which fail for the empty tensors of some components.
    return pickle.dumps(experiment)


def _terminate(pool: ProcessPoolExecutor) -> None:
    # Stop the chains still running after a failure or an interrupt rather than wait for
    # them; atomic writes leave no partial file. ProcessPoolExecutor.terminate_workers()
    # only arrives in Python 3.14, hence the processes are stopped directly.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
