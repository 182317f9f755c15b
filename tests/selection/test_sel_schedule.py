"""The budget schedule: the stage whose ``until`` covers a round's labelled fraction
selects, exactly as that strategy alone would; malformed schedules fail with the stage
named; through the experiment, a stage gets the run's ``strategy_options``."""

from __future__ import annotations

import json

import pytest
from sel_helpers import make_context

from alseg_monai.data import make_phantom
from alseg_monai.errors import ConfigError
from alseg_monai.selection import ScheduledStrategy, get_strategy

STAGES = [{"strategy": "gcl_coreset", "until": 0.25}, {"strategy": "random"}]


def test_each_round_is_picked_by_its_stage_as_that_strategy_alone_would():
    schedule = get_strategy("schedule", stages=STAGES)
    # 6 labelled of 40: adding 4 reaches 0.25 (the first stage), adding 5 goes beyond it.
    early, late = make_context(n=40, num_labelled=6), make_context(n=40, num_labelled=6)
    assert schedule.select(early, 4) == get_strategy("gcl_coreset").select(early, 4)
    assert schedule.select(late, 5) == get_strategy("random").select(late, 5)
    assert schedule.select(late, 5) != get_strategy("gcl_coreset").select(late, 5)


def test_a_schedule_needs_what_its_stages_need():
    schedule = ScheduledStrategy([{"strategy": "coreset", "until": 0.1}, {"strategy": "ntxent_coreset",
                                                                           "embedding": "projection"}])
    assert (schedule.encoder, schedule.embedding) == ("ntxent", "projection")
    assert ScheduledStrategy([{"strategy": "random"}]).encoder is None
    assert ScheduledStrategy([{"strategy": "random", "until": 0.1},
                              {"strategy": "variance_ratio", "num_models": 3}]).min_models == 2


def test_stage_boundaries_follow_the_rounded_round_sizes():
    schedule = ScheduledStrategy([{"strategy": "random", "until": 0.05}, {"strategy": "coreset"}])
    # 5 % of 264 slices is 13 (a floor): that round is still the first stage's.
    assert schedule.stage_for(7, 6, 264) is schedule.stages[0]
    assert schedule.stage_for(13, 13, 264) is schedule.stages[1]
    bounded = ScheduledStrategy([{"strategy": "random", "until": 0.1}])
    with pytest.raises(ConfigError, match="beyond the last stage"):
        bounded.stage_for(10, 5, 100)


@pytest.mark.parametrize(
    "stages, message",
    [
        ([], "non-empty list"),
        ({"strategy": "random"}, "non-empty list"),
        (["random"], r"stages\[0\]: expected a dict"),
        ([{"until": 0.1}], r"stages\[0\]: no 'strategy'"),
        ([{"strategy": "random", "until": 0.2}, {"strategy": "coreset", "until": 0.1}], "must increase"),
        ([{"strategy": "random"}, {"strategy": "coreset"}], "only the last stage"),
        ([{"strategy": "random", "until": 1.5}], r"stages\[0\]\.until"),
        ([{"strategy": "schedule", "until": 0.1}, {"strategy": "random"}], "cannot be a stage"),
        ([{"strategy": "nonsense"}], "unknown name 'nonsense'"),
        ([{"strategy": "gcl_coreset", "until": 0.1}, {"strategy": "ntxent_coreset"}], "different encoders"),
        ([{"strategy": get_strategy("random"), "seed": 1}], "need a strategy name"),
    ],
)
def test_malformed_schedules_name_the_problem(stages, message):
    with pytest.raises(ConfigError, match=message):
        ScheduledStrategy(stages)


def test_a_scheduled_run_repeats_its_first_stage_then_switches(tmp_path):
    from experiments import tiny_experiment

    phantom = make_phantom(tmp_path / "phantom", 6, image_size=32, seed=1, progress=False)
    schedule = {"name": "coreset_then_random", "strategy": "schedule",
                "stages": [{"strategy": "coreset", "until": 0.1}, {"strategy": "random"}]}
    tiny_experiment(phantom, tmp_path / "run", strategies=[schedule, "coreset"]).run()

    def labelled(name, round_index):
        path = tmp_path / "run" / name / "repeat_0" / f"round_{round_index}" / "selection.json"
        return json.loads(path.read_text(encoding="utf-8"))

    assert labelled("coreset_then_random", 0)["labelled"] == labelled("coreset", 0)["labelled"]
    assert len(labelled("coreset", 1)["added"]) >= 3
    assert labelled("coreset_then_random", 1)["added"] != labelled("coreset", 1)["added"]
    metrics = [json.loads((tmp_path / "run" / name / "repeat_0/round_0/metrics.json").read_text(encoding="utf-8"))
               for name in ("coreset_then_random", "coreset")]
    assert metrics[0]["dice"] == metrics[1]["dice"]  # same picks, same training seed


def test_stages_get_the_runs_strategy_options(tmp_path):
    from experiments import tiny_experiment

    schedule = {"name": "paper_then_random", "strategy": "schedule",
                "stages": [{"strategy": "gcl_coreset", "until": 0.1}, {"strategy": "random"}]}
    exp = tiny_experiment(tmp_path / "data", tmp_path / "run", strategies=[schedule],
                          **{"strategy_options#gcl_coreset#geometry": "euclidean"})
    stage = exp.strategy(exp.specs[0]).stages[0]
    assert stage.geometry == "euclidean"
    override = dict(schedule, stages=[{"strategy": "gcl_coreset", "until": 0.1, "geometry": "standardized"},
                                      {"strategy": "random"}])
    exp = tiny_experiment(tmp_path / "data", tmp_path / "run2", strategies=[override],
                          **{"strategy_options#gcl_coreset#geometry": "euclidean"})
    assert exp.strategy(exp.specs[0]).stages[0].geometry == "standardized"


def test_stage_settings_are_recorded_as_knobs_without_progress(tmp_path):
    from experiments import tiny_experiment

    def settings(progress: bool) -> dict:
        schedule = {"name": "paper_then_random", "strategy": "schedule",
                    "stages": [{"strategy": "gcl_coreset", "until": 0.1, "progress": progress},
                               {"strategy": "random"}]}
        exp = tiny_experiment(tmp_path / "data", tmp_path / f"run_{progress}", strategies=[schedule])
        return exp.settings["strategy_settings"]["paper_then_random"]

    quiet = settings(False)
    first, second = quiet["options"]["stages"]
    assert first["strategy"] == "alseg_monai.selection.gcl_coreset.GCLCoresetStrategy"
    assert first["options"]["geometry"] == "cosine" and "progress" not in first["options"]
    assert second == {"strategy": "alseg_monai.selection.random_sampling.RandomStrategy", "options": {}}
    # A progress bar changes no pick: a run resumes with it switched on.
    assert settings(True) == quiet
