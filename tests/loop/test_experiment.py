"""The AL loop through its Python API on a tiny phantom."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from experiments import tiny_experiment

from alseg_monai import ConfigError, DataError
from alseg_monai.data import make_phantom
from alseg_monai.loop.budgets import check_budgets, round_sizes


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), 6, image_size=32, seed=1, progress=False)


def experiment(phantom: Path, output: Path, **overrides):
    return tiny_experiment(phantom, output, **overrides)


def test_budget_schedule_errors():
    with pytest.raises(ConfigError, match="does not increase"):
        check_budgets([0.1, 0.1])
    with pytest.raises(ConfigError, match="outside"):
        check_budgets([0.5, 1.2])
    with pytest.raises(ConfigError, match="no more than"):
        round_sizes([0.01, 0.011], 100)
    assert round_sizes([0.02, 0.05, 0.4], 1000) == [20, 30, 350]


def test_budgets_larger_than_pool_fail_before_training(phantom, tmp_path):
    exp = experiment(phantom, tmp_path / "run", budgets=[0.001, 0.002])
    with pytest.raises(ConfigError, match="budgets"):
        exp.prepare()
    assert not (tmp_path / "run" / "random").exists()


def test_run_writes_rounds_and_report_and_rerun_is_a_noop(phantom, tmp_path):
    exp = experiment(phantom, tmp_path / "run")
    rows = exp.run()
    assert [(r["strategy"], r["budget"]) for r in rows] == [("random", 0.1), ("random", 0.2)]
    first, second = (json.loads((tmp_path / "run/random/repeat_0" / f"round_{k}/selection.json").read_text(encoding="utf-8"))
                     for k in (0, 1))
    pool = len(exp.pool)
    assert len(first["labelled"]) == int(pool * 0.1) and len(second["labelled"]) == int(pool * 0.2)
    assert set(first["labelled"]) <= set(second["labelled"])
    for name in ("results.csv", "results.md", "curves.png", "overlay.png"):
        assert (tmp_path / "run" / name).is_file(), name
    with open(tmp_path / "run/results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert {"strategy", "budget", "repeat", "dice", "cost", "dice_RV", "dice_Myo", "dice_LV"} <= set(table[0])
    for k in (0, 1):  # TensorBoard logs per round
        assert list((tmp_path / "run/random/repeat_0" / f"round_{k}/models").glob("model_0/tensorboard/events.*"))
    again = experiment(phantom, tmp_path / "run").run()
    assert again == rows


def test_changed_settings_refuse_to_resume(phantom, tmp_path):
    experiment(phantom, tmp_path / "run", budgets=[0.1]).prepare()
    with pytest.raises(ConfigError, match="image_size"):
        experiment(phantom, tmp_path / "run", budgets=[0.1], image_size=48).prepare()
    # Logging switches do not affect results: a resumed run may change them.
    experiment(phantom, tmp_path / "run", budgets=[0.1], progress=True,
               **{"segmentation#tensorboard": False}).prepare()
    with pytest.raises(ConfigError, match="iterations"):
        experiment(phantom, tmp_path / "run", budgets=[0.1], **{"segmentation#iterations_scale": 7}).prepare()
    # A changed component is a changed setting too, named by where it sits.
    with pytest.raises(ConfigError, match="trainers"):
        experiment(phantom, tmp_path / "run", budgets=[0.1], **{"optimizer#lr": 0.5}).prepare()
    # Strategies may be added to a run; one it has must keep its options.
    experiment(phantom, tmp_path / "run", budgets=[0.1], strategies=["gcl_coreset"]).prepare()
    with pytest.raises(ConfigError, match=r"strategy_settings\[gcl_coreset\]"):
        experiment(phantom, tmp_path / "run", budgets=[0.1], strategies=["gcl_coreset"],
                   **{"strategy_options#gcl_coreset#geometry": "euclidean"}).prepare()


def test_a_study_extended_with_repeats_reuses_its_finished_ones(phantom, tmp_path):
    one = experiment(phantom, tmp_path / "run", budgets=[0.1], repeats=1).run()
    round_file = tmp_path / "run/random/repeat_0/round_0/metrics.json"
    written = round_file.stat().st_mtime_ns
    two = experiment(phantom, tmp_path / "run", budgets=[0.1], repeats=2).run()
    assert round_file.stat().st_mtime_ns == written  # repeat 0 was not trained again
    assert [r["repeat"] for r in two] == [0, 1] and two[0] == one[0]
    # Repeat 1 is the one a 2-repeat run from scratch gives (seed + 1); only timings differ.
    fresh = experiment(phantom, tmp_path / "fresh", budgets=[0.1], repeats=2).run()
    untimed = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in rows] for rows in (two, fresh)]
    assert untimed[0] == untimed[1]


def test_unknown_strategy_lists_known(phantom, tmp_path):
    with pytest.raises(ConfigError, match="gcl_coreset"):
        experiment(phantom, tmp_path / "run", strategies=["gcl_corest"])


def test_human_annotation_round_trip(phantom, tmp_path):
    out = tmp_path / "run"
    exp = experiment(phantom, out, oracle="human", budgets=[0.1])
    assert exp.run() == []  # stops, waiting for the expert
    round_dir = out / "random/repeat_0/round_0"
    with open(round_dir / "annotation_request/request.csv") as handle:
        request = list(csv.DictReader(handle))
    selection = json.loads((round_dir / "selection.json").read_text(encoding="utf-8"))
    assert sorted(r["id"] for r in request) == sorted(selection["added"])
    volumes = sorted({r["volume"] for r in request})
    marker = nib.load(str(round_dir / "annotation_request" / f"{volumes[0]}_to_annotate.nii.gz")).get_fdata()
    requested = sorted(int(r["slice_index"]) for r in request if r["volume"] == volumes[0])
    assert sorted(np.flatnonzero(marker.reshape(-1, marker.shape[-1]).max(axis=0))) == requested

    annotations = round_dir / "annotations"
    annotations.mkdir()
    truth = {v: phantom / v.split("_")[0] / f"{v}_gt.nii.gz" for v in volumes}
    wrong = nib.load(str(truth[volumes[0]]))
    nib.save(nib.Nifti1Image(np.zeros(wrong.shape[:2] + (wrong.shape[2] + 1,), np.uint8), wrong.affine),
             str(annotations / f"{volumes[0]}_label.nii.gz"))
    for volume in volumes[1:]:
        nib.save(nib.load(str(truth[volume])), str(annotations / f"{volume}_label.nii.gz"))
    with pytest.raises(DataError, match=f"{volumes[0]}_label.nii.gz.*shape"):
        experiment(phantom, out, oracle="human", budgets=[0.1]).run()

    nib.save(nib.load(str(truth[volumes[0]])), str(annotations / f"{volumes[0]}_label.nii.gz"))
    rows = experiment(phantom, out, oracle="human", budgets=[0.1]).run()
    assert len(rows) == 1 and rows[0]["labelled"] == len(request)


def test_volume_unit_counts_slices(phantom, tmp_path):
    exp = experiment(phantom, tmp_path / "run", strategies=[{"name": "volumes", "strategy": "random", "unit": "volume"}],
                     budgets=[0.2])
    rows = exp.run()
    selection = json.loads((tmp_path / "run/volumes/repeat_0/round_0/selection.json").read_text(encoding="utf-8"))
    volumes = {exp.records[i]["volume"] for i in selection["labelled"]}
    whole = [s["id"] for s in exp.pool if s["volume"] in volumes]
    assert sorted(whole) == sorted(selection["labelled"])  # whole volumes only
    assert rows[0]["cost"] == len(selection["labelled"]) >= int(0.2 * len(exp.pool))


def test_ensemble_strategy_needs_models_per_round(phantom, tmp_path):
    with pytest.raises(ConfigError, match="models_per_round"):
        experiment(phantom, tmp_path / "run", strategies=["variance_ratio"])
