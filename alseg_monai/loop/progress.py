"""How far a run is: a log line per finished round with the rounds done out of the whole
run and an estimate of the time left.

A long run (a study: strategies x repeats x budgets rounds, minutes each) otherwise logs
every engine event but never its position. :class:`RunProgress` is a round handler of
:class:`~.loop.ActiveLearningLoop` (as an ignite handler is of an engine event): the loop
calls it with each round's metrics once the round is recorded. Parallel chains send their
rounds to the parent process, whose :class:`RunProgress` alone knows the total
(:func:`~.parallel.run_chains`). The lines are plain log records, so a log file gets
the same lines as the terminal and no progress-bar carriage returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from ..utils import is_main_process

__all__ = ["RunProgress", "format_duration"]

logger = logging.getLogger(__name__)


class RunProgress:
    """Counts a run's finished rounds and logs a line for each.

    The estimate of the time left is the mean wall time per round of the rounds finished
    in this call (rounds read back from disk took no time now), times the rounds left. Run
    in parallel workers, the wall time per round already reflects the rounds that overlap.

    Args:
        total: the rounds of the whole run: strategies x repeats x budgets.
        done: the rounds already finished on disk when this call starts (a resumed run).
        clock: seconds of a monotonic clock (tests pass their own).

    Example::

        progress = RunProgress(total=12, done=4)
        progress.start()
        loop = ActiveLearningLoop(..., handlers=[progress])
    """

    def __init__(self, total: int, done: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.clock = int(total), int(done), clock
        self.finished_now = 0
        self.started: float | None = None

    def start(self) -> None:
        """Start the clock of this call's rounds and say where the run stands."""
        self.started = self.clock()
        state = "finished on disk" if self.done else "done"
        _log("rounds %d/%d %s; %d to run", self.done, self.total, state, self.total - self.done)

    def __call__(self, row: Mapping) -> None:
        """The handler: count the round of metrics ``row`` and log the run's progress."""
        if self.started is None:
            self.start()
        self.done += 1
        self.finished_now += 1
        _log("%s", self.line(row))

    def eta(self) -> float:
        """Seconds left, extrapolated from this call's rounds (0 when none is left)."""
        if self.started is None or not self.finished_now:
            return float("nan")
        per_round = (self.clock() - self.started) / self.finished_now
        return per_round * max(0, self.total - self.done)

    def line(self, row: Mapping) -> str:
        """``rounds 5/12 done (42%): random repeat 0 budget 20%; 3 this call in 1 min 05 s, ETA 2 min 10 s``."""
        elapsed = 0.0 if self.started is None else self.clock() - self.started
        percent = 100 * self.done / self.total if self.total else 100.0
        return (f"rounds {self.done}/{self.total} done ({percent:.0f}%): {_round_name(row)}; "
                f"{self.finished_now} this call in {format_duration(elapsed)}, ETA {format_duration(self.eta())}")


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``; ``?`` for an unknown (NaN) duration."""
    if seconds != seconds:
        return "?"
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _round_name(row: Mapping) -> str:
    budget = row.get("budget")
    budget = f"{100 * float(budget):g}%" if budget is not None else "-"
    return f"{row.get('strategy', '?')} repeat {row.get('repeat', '-')} budget {budget}"


def _log(message: str, *args) -> None:
    # Every rank of a distributed run runs the same rounds; one line each is enough.
    if is_main_process():
        logger.info(message, *args)
