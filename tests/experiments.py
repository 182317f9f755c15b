"""Small experiments for the tests, built from the bundle's JSON as a user's run is."""

from __future__ import annotations

from pathlib import Path

from alseg_monai.loop import load_experiment

# Tiny settings: 32 x 32 slices, two rounds, one model per round trained for a few iterations.
TINY = {
    "image_size": 32,
    "split": {"method": "random", "fractions": [0.5, 0.25, 0.25], "seed": 0, "lists": {}},
    "budgets": [0.1, 0.2],
    "strategies": ["random"],
    "repeats": 1,
    "progress": False,
    "segmentation#iterations_scale": 100,
    "segmentation#min_iterations": 10,
    "segmentation#models_per_round": 1,
    "segmentation#val_interval": 10,
    "segmentation#batch_size": 4,
    "evaluation#bootstrap": 50,
    "encoder#epochs": 1,
    "encoder_def#feature_dim": 16,
}


def tiny_experiment(dataset_dir: str | Path, output_dir: str | Path, kind: str = "acdc", configs=(), **overrides):
    """The bundle's experiment on ``dataset_dir`` with :data:`TINY` settings and ``overrides``
    (bundle keys, ``a#b`` for nested ones)."""
    settings = {"dataset_kind": kind, "dataset_dir": str(dataset_dir), "output_dir": str(output_dir), **TINY}
    settings.update(overrides)
    return load_experiment(list(configs), settings)
