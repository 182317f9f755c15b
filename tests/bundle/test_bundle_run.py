"""The bundle as users run it: every strategy, the single-step workflows, metadata, and
configuration errors, through ``python -m monai.bundle``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import CONFIGS, run_bundle, tiny_overrides

from alseg_monai.selection import available_strategies

AL = ["active_learning.json", "data/phantom.json", "smoke.json"]
STRATEGIES = sorted(available_strategies())
# variance_ratio needs an ensemble; the workflows below reuse the run, so they repeat it.
RUN_SETTINGS = {"segmentation#models_per_round": 2}


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundle") / "phantom"


@pytest.fixture(scope="module")
def all_strategies_run(phantom_root, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("runs") / "all"
    result = run_bundle(AL, tiny_overrides(phantom_root, output, strategies=STRATEGIES, **RUN_SETTINGS))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output


def test_metadata_verifies_offline():
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_metadata", "--meta_file", str(CONFIGS / "metadata.json"),
         "--filepath", str(CONFIGS / "meta_schema.json")], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "verified with no error" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_through_the_bundle(all_strategies_run, strategy):
    with open(all_strategies_run / "results.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["strategy"] == strategy]
    assert [float(r["budget"]) for r in rows] == [0.1, 0.2]
    labelled: list[str] = []
    for round_index in (0, 1):
        selection = json.loads((all_strategies_run / strategy / "repeat_0" / f"round_{round_index}" /
                                "selection.json").read_text(encoding="utf-8"))
        assert len(set(selection["added"])) == len(selection["added"])
        assert not set(selection["added"]) & set(labelled)
        labelled = selection["labelled"]
    assert int(rows[-1]["labelled"]) == len(labelled)


@pytest.mark.slow
def test_report_files(all_strategies_run):
    for name in ("results.csv", "results.md", "curves.png", "embeddings.png", "overlay.png"):
        assert (all_strategies_run / name).stat().st_size > 0, name
    table = (all_strategies_run / "results.md").read_text(encoding="utf-8")
    assert all(f"| {s} |" in table for s in STRATEGIES)


@pytest.mark.slow
def test_train_evaluate_inference_workflows(all_strategies_run, phantom_root, tmp_path):
    selection = all_strategies_run / "random/repeat_0/round_1/selection.json"
    train = run_bundle(AL + ["train.json"], tiny_overrides(phantom_root, all_strategies_run, labelled_list=str(selection),
                                                            **RUN_SETTINGS))
    assert train.returncode == 0, train.stderr[-3000:]
    metrics = json.loads((all_strategies_run / "manual/metrics.json").read_text(encoding="utf-8"))
    assert metrics["labelled"] == len(json.loads(selection.read_text(encoding="utf-8"))["labelled"])

    round_dir = all_strategies_run / "random/repeat_0/round_1"
    evaluate = run_bundle(AL + ["evaluate.json"], tiny_overrides(phantom_root, all_strategies_run,
                                                                 checkpoint=str(round_dir), **RUN_SETTINGS))
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    evaluation = json.loads((round_dir / "evaluation.json").read_text(encoding="utf-8"))
    recorded = json.loads((round_dir / "metrics.json").read_text(encoding="utf-8"))
    assert evaluation["dice"] == pytest.approx(recorded["dice"])

    image = next(phantom_root.glob("patient001/patient001_frame01.nii.gz"))
    infer = run_bundle(AL + ["inference.json"], tiny_overrides(
        phantom_root, all_strategies_run, checkpoint=str(round_dir), **{"inference#input": repr([str(image)]),
                                                                        "inference#output_dir": str(tmp_path), **RUN_SETTINGS}))
    assert infer.returncode == 0, infer.stderr[-3000:]
    import nibabel as nib

    prediction, source = nib.load(str(tmp_path / "patient001_frame01_seg.nii.gz")), nib.load(str(image))
    assert prediction.shape == source.shape
    assert (prediction.affine == source.affine).all()


def test_misspelt_nested_override_is_named(phantom_root, tmp_path):
    result = run_bundle(AL, tiny_overrides(phantom_root, tmp_path / "out", **{"segmentation#iteration_scale": 5}),
                        timeout=300)
    assert result.returncode != 0
    assert "segmentation#iteration_scale" in result.stderr and "iterations_scale" in result.stderr
