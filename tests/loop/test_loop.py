"""ActiveLearningLoop with fake parts: the orchestration alone, no network and no data."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from alseg_monai.errors import AlsegError
from alseg_monai.loop import AnnotationPending
from alseg_monai.loop.loop import ActiveLearningLoop, RoundTraining
from alseg_monai.loop.state import RoundPaths
from alseg_monai.utils import read_json

POOL = {f"s{i:02d}": {"id": f"s{i:02d}", "volume": f"v{i // 5}"} for i in range(20)}


class FirstUnlabelled:
    """Picks the first ``budget`` unlabelled ids in pool order."""

    def __init__(self, unit="slice"):
        self.unit, self.calls = unit, []

    def select(self, context, budget):
        self.calls.append((list(context.labelled), budget))
        return [i for i in POOL if i not in context.labelled][:budget]


class RecordingOracle:
    def __init__(self, pending_at=None):
        self.pending_at, self.calls = pending_at, []

    def annotate(self, rounds):
        self.calls.append([[r["id"] for r in records] for records, _ in rounds])
        if self.pending_at is not None and len(rounds) - 1 == self.pending_at:
            raise AnnotationPending("waiting for the expert")
        return {r["id"]: {"label": r["id"]} for records, _ in rounds for r in records}


def make_loop(tmp_path, strategy=None, oracle=None, trainer_log=None, budgets=(0.1, 0.25, 0.5)):
    trainer_log = [] if trainer_log is None else trainer_log

    def trainer(records, annotations, paths, index, fraction):
        trainer_log.append((index, [r["id"] for r in records], sorted(annotations)))
        return RoundTraining(model=len(records), val_dice=0.5, iterations=10 * (index + 1))

    def evaluator(model, csv):
        return SimpleNamespace(mean_dice=model / 100, per_class=[model / 100], per_volume=[model / 100])

    loop = ActiveLearningLoop(
        name="first",
        strategy=strategy or FirstUnlabelled(),
        context=lambda labelled, index: SimpleNamespace(labelled=labelled, round=index),
        oracle=oracle or RecordingOracle(),
        trainer=trainer,
        evaluator=evaluator,
        describe=lambda selection, annotations: {"annotated": len(annotations)},
        records=POOL,
        budgets=list(budgets),
        paths=lambda k: RoundPaths(tmp_path / f"round_{k}"),
        cost=lambda records: float(len(records)),
        info={"repeat": 0},
    )
    for k in range(len(budgets)):
        (tmp_path / f"round_{k}").mkdir(parents=True, exist_ok=True)
    return loop, trainer_log


def test_rounds_add_slices_to_cumulative_budgets(tmp_path):
    strategy, oracle = FirstUnlabelled(), RecordingOracle()
    loop, trained = make_loop(tmp_path, strategy, oracle)
    rows = loop.run()
    assert [c[1] for c in strategy.calls] == [2, 3, 5]  # 10 %, 25 %, 50 % of 20 slices
    assert [len(c[0]) for c in strategy.calls] == [0, 2, 5]
    assert [r["labelled"] for r in rows] == [2, 5, 10]
    assert [r["dice"] for r in rows] == [0.02, 0.05, 0.10]
    assert [r["iterations"] for r in rows] == [10, 20, 30]
    assert rows[1]["cost"] == 5.0 and rows[1]["repeat"] == 0 and rows[1]["strategy"] == "first"
    # the oracle sees every round so far, the trainer every labelled slice so far
    assert oracle.calls[2] == [["s00", "s01"], ["s02", "s03", "s04"], [f"s{i:02d}" for i in range(5, 10)]]
    assert trained[2][1] == [f"s{i:02d}" for i in range(10)]
    selection = read_json(tmp_path / "round_1" / "selection.json")
    assert selection["added"] == ["s02", "s03", "s04"] and selection["diagnostics"] == {"annotated": 5}
    assert read_json(tmp_path / "round_2" / "metrics.json") == rows[2]


def test_finished_rounds_are_read_back_not_redone(tmp_path):
    loop, trained = make_loop(tmp_path)
    first = loop.run()
    strategy = FirstUnlabelled()
    again, trained_again = make_loop(tmp_path, strategy)
    assert again.run() == first
    assert strategy.calls == [] and trained_again == []


def test_pending_annotation_keeps_the_selection_and_resumes_there(tmp_path):
    strategy = FirstUnlabelled()
    loop, trained = make_loop(tmp_path, strategy, RecordingOracle(pending_at=1))
    with pytest.raises(AnnotationPending):
        loop.run()
    assert [k for k, *_ in trained] == [0]
    assert read_json(tmp_path / "round_1" / "selection.json")["added"] == ["s02", "s03", "s04"]
    assert not (tmp_path / "round_1" / "metrics.json").exists()
    # the expert delivered: the round resumes from its written selection, the strategy is not asked again
    resumed_strategy = FirstUnlabelled()
    resumed, trained = make_loop(tmp_path, resumed_strategy)
    rows = resumed.run()
    assert [r["labelled"] for r in rows] == [2, 5, 10]
    assert [c[1] for c in resumed_strategy.calls] == [5]
    assert [k for k, *_ in trained] == [1, 2]


class Broken:
    unit = "slice"

    def __init__(self, answer):
        self.answer = answer

    def select(self, context, budget):
        return self.answer(context, budget)


@pytest.mark.parametrize(
    "answer, message",
    [
        (lambda c, b: list(POOL)[: b + 1], "3 ids for a budget of 2"),
        (lambda c, b: ["s00", "s00"], "repeated ids"),
        (lambda c, b: ["s00", "nope"], "ids not in the pool such as 'nope'"),
    ],
)
def test_an_invalid_selection_names_the_strategy_and_the_problem(tmp_path, answer, message):
    loop, trained = make_loop(tmp_path, Broken(answer))
    with pytest.raises(AlsegError, match="strategy 'first' returned an invalid selection") as error:
        loop.run()
    assert message in str(error.value)
    assert trained == [] and not (tmp_path / "round_0" / "selection.json").exists()


def test_a_whole_volume_strategy_may_overshoot_and_the_next_round_tops_up(tmp_path):
    class Volumes(FirstUnlabelled):
        def select(self, context, budget):
            self.calls.append((list(context.labelled), budget))
            volumes = []
            for i in POOL:
                if i not in context.labelled and POOL[i]["volume"] not in volumes:
                    volumes.append(POOL[i]["volume"])
                if sum(POOL[j]["volume"] in volumes for j in POOL) >= budget:
                    break
            return [i for i in POOL if POOL[i]["volume"] in volumes and i not in context.labelled]

    strategy = Volumes(unit="volume")
    loop, _ = make_loop(tmp_path, strategy, budgets=(0.1, 0.5))
    rows = loop.run()
    assert [r["labelled"] for r in rows] == [5, 10]  # one volume (5 slices) for 2, then 5 more for 10
    assert [c[1] for c in strategy.calls] == [2, 5]


def test_budgets_that_add_no_slice_are_refused(tmp_path):
    with pytest.raises(Exception, match="budget"):
        make_loop(tmp_path, budgets=(0.1, 0.12))
