"""Crash safety, determinism and a read-only dataset, with the bundle run as a user runs
it (``python -m monai.bundle run`` in a subprocess, killed with SIGKILL)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from bundle_helpers import BUNDLE, bundle_command, run_bundle, tiny_overrides  # noqa: E402

from alseg_monai.data import make_phantom  # noqa: E402

AL = ["active_learning.json", "data/phantom.json", "smoke.json"]
VOLATILE = {"seconds", "train_seconds", "seconds_detail"}


def overrides(phantom_root: Path, output: Path, **extra) -> dict:
    settings = {"strategies": ["gcl_coreset", "vaal"], "encoder#epochs": 3, "strategy_options#vaal#epochs": 3}
    settings.update(extra)
    return tiny_overrides(phantom_root, output, **settings)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "phantom"
    make_phantom(root, 6, image_size=32, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def reference(phantom_root, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("reference") / "run"
    result = run_bundle(AL, overrides(phantom_root, output))
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def results(output: Path) -> list[dict]:
    with open(output / "results.csv") as handle:
        return [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader(handle)]


def selections(output: Path) -> dict[str, list[str]]:
    return {str(p.relative_to(output)): json.loads(p.read_text(encoding="utf-8"))["labelled"] for p in output.rglob("selection.json")}


def round_metrics(output: Path) -> dict[str, dict]:
    return {str(p.relative_to(output)): {k: v for k, v in json.loads(p.read_text(encoding="utf-8")).items() if k not in VOLATILE}
            for p in output.rglob("metrics.json")}


def check_every_file_is_whole(output: Path) -> None:
    """What a reader can open under ``output`` is complete (temp files aside)."""
    from PIL import Image

    for path in output.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            list(csv.reader(path.open()))
        elif path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as stored:
                [stored[k] for k in stored.files]
        elif path.suffix == ".pt":
            torch.load(path, map_location="cpu", weights_only=False)
        elif path.suffix == ".png":
            with Image.open(path) as image:
                image.load()


def run_until(command: list[str], trigger, timeout: float = 600) -> int:
    """Start ``command``; SIGKILL it as soon as ``trigger()`` is true. Returns its exit code."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=BUNDLE,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if trigger():
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    return process.wait(timeout=60)


@pytest.mark.slow
def test_killed_at_every_stage_resumes_to_identical_results(reference, phantom_root, tmp_path):
    output = tmp_path / "run"
    command = bundle_command(AL, overrides(phantom_root, output))
    stages = {
        "encoder training": lambda: (output / "encoder" / "checkpoint_1.pt").exists(),
        "segmentation training": lambda: (output / "gcl_coreset/repeat_0/round_0/models/model_0").exists(),
        "selection": lambda: (output / "vaal/repeat_0/round_0/metrics.json").exists(),
        "report writing": lambda: (output / "results.csv").exists(),
    }
    for stage, trigger in stages.items():
        code = run_until(command, trigger)
        assert code == -signal.SIGKILL, f"the run was not killed during {stage} (exit {code})"
        check_every_file_is_whole(output)
    (output / ".metrics.json.12345.tmp").write_text('{"half": ')  # what a crash mid-write leaves
    final = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace", cwd=BUNDLE, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert not list(output.rglob(".*.tmp")), "stale temporary files were not cleaned"
    assert results(output) == results(reference)
    assert selections(output) == selections(reference)
    assert round_metrics(output) == round_metrics(reference)


@pytest.mark.slow
def test_same_seed_same_results_other_seed_other_selections(reference, phantom_root, tmp_path):
    again = tmp_path / "again"
    assert run_bundle(AL, overrides(phantom_root, again)).returncode == 0
    assert results(again) == results(reference)
    assert selections(again) == selections(reference)
    assert round_metrics(again) == round_metrics(reference)

    other = tmp_path / "other"
    assert run_bundle(AL, overrides(phantom_root, other, seed=1)).returncode == 0
    assert selections(other) != selections(reference)


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()} | {str(p.relative_to(root)): (0, "dir")
                                                                for p in root.rglob("*") if p.is_dir()}


@pytest.mark.slow
def test_dataset_directory_is_never_written(phantom_root, tmp_path):
    import shutil

    dataset = Path(shutil.copytree(phantom_root, tmp_path / "readonly"))
    for path in [dataset, *dataset.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _snapshot(dataset)
    try:
        result = run_bundle(["active_learning.json", "smoke.json"], {
            "dataset_kind": "acdc", "dataset_dir": str(dataset), "output_dir": str(tmp_path / "run"),
            "strategies": ["random"], "budgets": [0.1]})
        assert result.returncode == 0, result.stderr[-3000:]
        assert _snapshot(dataset) == before
    finally:
        for path in [dataset, *dataset.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
