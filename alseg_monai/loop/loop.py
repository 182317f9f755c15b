"""One strategy's active-learning rounds for one repeat, composed of the parts it is given.

Like baal's ``ActiveLearningLoop``, the loop does none of the work itself: per round
(paper Sec. 3.2: a cumulative budget of the pool's slices), it asks the ``strategy``
which slices to add, the ``oracle`` for their annotations, the ``trainer`` for the
round's model and the ``evaluator`` for its test Dice, and records each step's result
on disk before the next (``selection.json``, ``metrics.json``), so a stopped run
resumes at the first unfinished step. Who trains an encoder, builds a network or
waits for a human is the business of the parts (see :class:`ActiveLearningExperiment`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import AlsegError
from ..utils import atomic_write_json, barrier, broadcast_object, is_main_process, read_json
from .budgets import round_sizes
from .state import RoundPaths

__all__ = ["ActiveLearningLoop", "Oracle", "RoundTraining"]

logger = logging.getLogger(__name__)


class Oracle(Protocol):
    """Who reveals the annotations of the labelled slices.

    ``annotate(rounds)`` gets, for every round so far, the records it added and its
    :class:`RoundPaths`, and returns ``{slice id: {"label" | "scribble": (H, W) array}}``
    for the labelled slices whose annotation is not already in the slice cache. A
    human oracle exports each round's request and waits for the expert's files there
    (raising :class:`~alseg_monai.loop.AnnotationPending` to stop the run cleanly).
    """

    def annotate(self, rounds: Sequence[tuple[Sequence[Mapping], RoundPaths]]) -> dict:
        ...


@dataclass
class RoundTraining:
    """What a round's ``trainer`` returns: the kept model and its training summary."""

    model: Any
    val_dice: float
    iterations: int


class ActiveLearningLoop:
    """The rounds of one (strategy, repeat) chain.

    Args:
        name: the strategy's name in tables and folders.
        strategy: ``select(context, budget) -> ids`` (a :class:`~alseg_monai.selection.Strategy`
            or any object with that method); one with ``unit = "volume"`` returns whole
            volumes, at least ``budget`` slices.
        context: ``context(labelled ids, round index) -> SelectionContext``.
        oracle: see :class:`Oracle`.
        trainer: ``trainer(records, annotations, paths, round index, fraction) -> RoundTraining``.
        evaluator: ``evaluator(model, csv path) -> VolumeEvaluation``.
        describe: ``describe(selection, annotations) -> dict``: the pick diagnostics added
            to each selection record.
        records: pool slice id -> slice record.
        budgets: cumulative labelled fractions of the pool, increasing.
        paths: round index -> its :class:`RoundPaths`.
        cost: records -> annotation cost of labelling them.
        info: entries added to every round's metrics (strategy, unit, label kind, repeat, seed).
        handlers: called with each round's metrics once the round is recorded, as ignite calls
            the handlers of an engine event (e.g. :class:`~.progress.RunProgress`); rounds
            read back from disk are not passed.
    """

    def __init__(
        self,
        name: str,
        strategy: Any,
        context: Callable[[list[str], int], Any],
        oracle: Oracle,
        trainer: Callable[..., RoundTraining],
        evaluator: Callable[[Any, Any], Any],
        describe: Callable[[dict, Mapping], dict],
        records: Mapping[str, dict],
        budgets: Sequence[float],
        paths: Callable[[int], RoundPaths],
        cost: Callable[[Sequence[Mapping]], float],
        info: Mapping[str, Any] | None = None,
        handlers: Sequence[Callable[[dict], Any]] = (),
    ) -> None:
        self.name, self.strategy, self.context, self.oracle = name, strategy, context, oracle
        self.trainer, self.evaluator, self.describe = trainer, evaluator, describe
        self.records, self.budgets, self.paths, self.cost = records, list(budgets), paths, cost
        self.info = dict(info or {})
        self.handlers = list(handlers)
        round_sizes(self.budgets, len(records))  # every round adds slices

    def run(self) -> list[dict]:
        """Run (or resume) every round in budget order; returns the rounds' metrics."""
        labelled: list[str] = []
        rows = []
        for index in range(len(self.budgets)):
            paths = self.paths(index)
            if paths.done:
                labelled = read_json(paths.selection)["labelled"]
                rows.append(read_json(paths.metrics))
                continue
            row, labelled = self.run_round(index, labelled)
            rows.append(row)
        return rows

    def run_round(self, index: int, labelled: list[str]) -> tuple[dict, list[str]]:
        """Select, annotate, train, evaluate and record round ``index`` after ``labelled``;
        returns the round's metrics and the labelled ids after it."""
        start = time.perf_counter()
        paths, fraction = self.paths(index), self.budgets[index]
        selection = self.select(index, labelled, paths)
        records = [self.records[i] for i in selection["labelled"]]
        history = [([self.records[i] for i in read_json(self.paths(k).selection)["added"]], self.paths(k))
                   for k in range(index)] + [([self.records[i] for i in selection["added"]], paths)]
        annotations = self.oracle.annotate(history)
        if "diagnostics" not in selection:
            selection["diagnostics"] = self.describe(selection, annotations)
            _write(paths.selection, selection)
        trained_at = time.perf_counter()
        training = self.trainer(records, annotations, paths, index, fraction)
        train_seconds = time.perf_counter() - trained_at
        evaluation = self.evaluator(training.model, paths.test_csv)
        row = {
            **self.info, "strategy": self.name, "budget": fraction, "round": index, "labelled": len(records),
            "added": len(selection["added"]), "cost": self.cost(records), "dice": evaluation.mean_dice,
            "dice_per_class": [float(v) for v in evaluation.per_class],
            "dice_per_volume": [float(v) for v in evaluation.per_volume],
            "val_dice": training.val_dice, "iterations": training.iterations, "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }
        _write(paths.metrics, row)
        logger.info("round done: %s repeat %s budget %g%% (%d slices) -> test Dice %.4f, cost %.2f, %.0f s",
                    self.name, self.info.get("repeat", "-"), 100 * fraction, len(records), row["dice"], row["cost"],
                    row["seconds"])
        for handler in self.handlers:
            handler(row)
        return row, selection["labelled"]

    def select(self, index: int, labelled: list[str], paths: RoundPaths) -> dict:
        """This round's selection record: read back if written, else asked of the strategy."""
        if paths.selection.is_file():
            return read_json(paths.selection)
        # Whole-volume strategies may overshoot a round's target; the next round tops up to its own.
        budget = max(0, int(len(self.records) * self.budgets[index]) - len(labelled))
        added = [str(i) for i in self.strategy.select(self.context(list(labelled), index), budget)]
        # Every rank selected (model scores are shared across ranks); all train on rank 0's picks.
        added = broadcast_object(added)
        self._check(added, labelled, budget)
        selection = {"round": index, "budget": self.budgets[index], "added": added, "labelled": list(labelled) + added}
        _write(paths.selection, selection)
        barrier()  # a human oracle on another rank reads this round's selection back
        return selection

    def _check(self, added: Sequence[str], labelled: Sequence[str], budget: int) -> None:
        problems = []
        whole_volumes = getattr(self.strategy, "unit", "slice") == "volume"
        if len(added) < budget if whole_volumes else len(added) != budget:
            problems.append(f"{len(added)} ids for a budget of {budget}")
        if len(set(added)) != len(added):
            problems.append("repeated ids")
        if set(added) & set(labelled):
            problems.append("ids already labelled")
        unknown = [i for i in added if i not in self.records]
        if unknown:
            problems.append(f"ids not in the pool such as {unknown[0]!r}")
        if problems:
            raise AlsegError(f"strategy {self.name!r} returned an invalid selection: {'; '.join(problems)}")


def _write(path, content: Any) -> None:
    # Rank 0 writes the loop's state; a later collective orders the write before any other
    # rank's read (the next step's broadcast, or the barrier before the report).
    if is_main_process():
        atomic_write_json(path, content)
