"""Run an experiment's (strategy, repeat) chains in parallel worker processes.

The rounds of one chain depend on each other (a round selects given the slices
labelled before it); different chains do not. On a CPU, the small per-round networks
use many threads poorly (one 2-thread process trains the paper's UNet at 64 x 64 only
1.24x faster than one thread), so independent chains in one-thread workers use the
cores better. Each worker re-reads the dataset and the slice cache from disk, runs
whole chains, and writes each round's files as the sequential loop does; the resumable
on-disk state is the same, so an interrupted parallel run resumes with any ``workers``.

Workers are spawned (not forked: forking a process that has run OpenMP regions is not
safe), their log records travel to this process's handlers through a queue, each round
they finish travels to this process's round handlers (the run's progress, which alone
knows the whole run) through a second one, and the first failure stops the run and is
raised here. A worker holds no named semaphore of its own (see :func:`_thread_lock_for_bars`),
so stopping it leaves none for the resource tracker to report as leaked.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import pickle
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .experiment import ActiveLearningExperiment

__all__ = []

logger = logging.getLogger(__name__)

_EXPERIMENT: ActiveLearningExperiment | None = None
_NOTICES: _RoundNotices | None = None

# How often the parent passes the workers' finished rounds on to its round handlers.
_POLL_SECONDS = 0.5


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


class _RoundNotices:
    """A worker's round handler: sends each round it finished to the parent's handlers.

    A ``SimpleQueue`` writes in the calling thread (no feeder thread), so a round's notice
    is in the pipe before its chain's result reaches the parent.
    """

    KEYS = ("strategy", "repeat", "round", "budget", "dice")

    def __init__(self, queue) -> None:
        self.queue = queue

    def __call__(self, row: dict) -> None:
        self.queue.put({key: row.get(key) for key in self.KEYS})


def _thread_lock_for_bars() -> None:
    """Give tqdm a thread lock in place of its default, which adds a multiprocessing lock.

    In a spawned worker that lock is a named semaphore registered with the resource tracker,
    and private to the worker (spawned processes share no lock, so it orders nothing). A
    worker stopped by a signal (the first failure, Ctrl-C, its parent's death) never
    unregisters it, and the tracker then warns of "leaked semaphore objects" at exit.
    """
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


@contextlib.contextmanager
def _repeats_dropped(handler: logging.Handler) -> Iterator[None]:
    """Drop ``handler``'s records below ERROR within the block.

    A worker's ``prepare()`` repeats the parent's on the same data (the dataset summary,
    the checks' warnings), whose messages the parent has logged once already.
    """
    def not_a_repeat(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    handler.addFilter(not_a_repeat)
    try:
        yield
    finally:
        handler.removeFilter(not_a_repeat)


def _init_worker(pickled: bytes, queue, notices, level: int, threads: int) -> None:
    global _EXPERIMENT, _NOTICES
    _exit_with_parent()
    _thread_lock_for_bars()
    experiment = pickle.loads(pickled)
    torch.set_num_threads(threads)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(level)
    experiment._worker = True
    with _repeats_dropped(root.handlers[0]):
        experiment.prepare()
    _EXPERIMENT, _NOTICES = experiment, _RoundNotices(notices)


def _run_chain(spec_index: int, repeat: int) -> tuple[int, int]:
    assert _EXPERIMENT is not None, "worker not initialised"
    _EXPERIMENT.run_chain(spec_index, repeat, handlers=[_NOTICES])
    return spec_index, repeat


def run_chains(experiment: ActiveLearningExperiment, chains: Sequence[tuple[int, int]], workers: int,
               handlers: Sequence[Callable[[dict], Any]] = ()) -> None:
    """Run ``experiment.run_chain(spec_index, repeat)`` for every chain in ``workers`` processes.

    ``handlers`` are called here, in this process, with each round a worker finished (its
    strategy, repeat, round, budget and test Dice), as the sequential loop calls its own.

    Raises:
        the first exception a chain raised (the other workers are stopped; every round
        finished so far stays on disk).
    """
    context = multiprocessing.get_context("spawn")
    queue, notices = context.Queue(), context.SimpleQueue()
    root = logging.getLogger()
    listener = logging.handlers.QueueListener(queue, *root.handlers, respect_handler_level=True)
    threads = threads_per_worker(workers)
    logger.info("running %d chains (strategy x repeat) in %d worker processes of %d thread(s)",
                len(chains), workers, threads)
    listener.start()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(_pickled(experiment), queue, notices, root.getEffectiveLevel(), threads))
    completed = False
    try:
        with _RoundRelay(notices, handlers) as relay:
            _wait_for_chains(experiment, [pool.submit(_run_chain, index, repeat) for index, repeat in chains], relay)
        completed = True
    finally:
        if not completed:
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        listener.stop()
        _close(queue, notices)


class _RoundRelay:
    """Calls this process's round handlers with the rounds the workers send.

    A thread of its own passes them on every ``_POLL_SECONDS``: the main thread can wait for
    seconds in ``ProcessPoolExecutor.submit`` while a spawned worker starts (the worker's
    start-up data goes through a pipe it reads only once its imports are done). A handler's
    error is logged, not raised: progress is no reason to stop the chains.
    """

    def __init__(self, notices, handlers: Sequence[Callable[[dict], Any]]) -> None:
        self.notices, self.handlers = notices, list(handlers)
        self.lock, self.stopped = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="alseg-round-relay", daemon=True)

    def __enter__(self) -> _RoundRelay:
        self.thread.start()
        return self

    def __exit__(self, error_type, *_) -> None:
        self.stopped.set()
        self.thread.join()
        if error_type is None:
            self.drain()  # every chain has returned, so every round's notice is in

    def _run(self) -> None:
        while not self.stopped.wait(_POLL_SECONDS):
            self.drain()

    def drain(self) -> None:
        """Call the handlers with every round sent so far."""
        with self.lock:
            while not self.notices.empty():
                row = self.notices.get()
                for handler in self.handlers:
                    try:
                        handler(row)
                    except Exception:
                        logger.exception("round handler %r failed", handler)


def _wait_for_chains(experiment: ActiveLearningExperiment, futures: list, relay: _RoundRelay) -> None:
    """Log each chain done (after its rounds) until all are; raise the first chain's error."""
    pending, done_count = set(futures), 0
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        relay.drain()  # a chain's rounds were sent before its result
        for future in done:
            index, repeat = future.result()  # re-raises a chain's error here
            done_count += 1
            logger.info("chain done: %s repeat %d (%d/%d)", experiment.specs[index].name, repeat, done_count,
                        len(futures))


def _close(queue, notices) -> None:
    # Release the queues' semaphores and pipes now rather than when they are collected.
    queue.close()
    queue.join_thread()
    notices.close()


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
