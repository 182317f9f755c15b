"""Parallel (strategy, repeat) chains, the ablation's NT-Xent encoder, and the pick
diagnostics and study report of a run, through the experiment's Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from experiments import tiny_experiment

from alseg_monai import ConfigError
from alseg_monai.data import make_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom"), 12, image_size=32, seed=3, progress=False)


def _experiment(phantom, output, **overrides):
    settings = {"budgets": [0.05, 0.1], "repeats": 2, "segmentation#min_iterations": 8,
                "segmentation#val_interval": 4, "sampler#batch_size": 6, "ntxent_sampler#batch_size": 4,
                "strategies": ["random", "ntxent_coreset",
                               {"name": "gcl_projection", "strategy": "gcl_coreset", "embedding": "projection",
                                "first_centre": "medoid"}]}
    settings.update(overrides)
    return tiny_experiment(phantom, output, **settings)


@pytest.mark.slow
def test_parallel_chains_reproduce_the_sequential_run(phantom, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two 1-thread workers then compute exactly as this 1-thread process
    try:
        sequential = _experiment(phantom, tmp_path / "one").run()
        parallel = _experiment(phantom, tmp_path / "two", workers=2).run()
    finally:
        torch.set_num_threads(threads)
    key = lambda r: (r["strategy"], r["repeat"], r["round"])  # noqa: E731
    assert len(parallel) == len(sequential) == 3 * 2 * 2
    for a, b in zip(sorted(sequential, key=key), sorted(parallel, key=key)):
        assert key(a) == key(b) and a["dice"] == b["dice"] and a["val_dice"] == b["val_dice"]
    for run in ("one", "two"):
        root = tmp_path / run
        # Each encoder the strategies use is trained once, before the chains; the ablation's is NT-Xent only.
        assert (root / "encoder/projections.npy").is_file() and (root / "encoder_ntxent/embeddings.npy").is_file()
        assert not (root / "encoder_ntxent/projections.npy").exists()
        logs = list((root / "encoder_ntxent/tensorboard").glob("events.*"))
        assert logs
    gcl, ntxent = (np.load(tmp_path / "one" / folder / "embeddings.npy") for folder in ("encoder", "encoder_ntxent"))
    assert gcl.shape == ntxent.shape and not np.allclose(gcl, ntxent)
    for name in ("study.md", "study.png", "picks.png"):
        assert (tmp_path / "two" / name).is_file(), name
    study = (tmp_path / "two/study.md").read_text(encoding="utf-8")
    assert "| ntxent_coreset - random |" not in study and "| strategy - random |" in study
    assert "| gcl_projection |" in study
    selection = json.loads((tmp_path / "two/gcl_projection/repeat_1/round_1/selection.json").read_text("utf-8"))
    diagnostics = selection["diagnostics"]
    assert diagnostics["labelled"]["slices"] == len(selection["labelled"])
    assert set(diagnostics["pool"]["class_share"]) == {"RV", "Myo", "LV"}
    assert 0.0 <= diagnostics["added"]["position_mean"] <= 1.0


def test_workers_and_encoders_are_checked(phantom, tmp_path):
    with pytest.raises(ConfigError, match="workers"):
        _experiment(phantom, tmp_path / "a", workers=0)
    with pytest.raises(ConfigError, match="simulated oracle"):
        _experiment(phantom, tmp_path / "b", workers=2, oracle="human")
    with pytest.raises(ConfigError, match="encoder 'mine'"):
        _experiment(phantom, tmp_path / "d", strategies=[{"name": "x", "strategy": "gcl_coreset",
                                                         "encoder": "mine"}]).prepare()
