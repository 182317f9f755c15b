"""Whole rounds at tiny settings: train, validate, checkpoint, restore the best, evaluate, write the CSV."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.evaluation import evaluate_volumes
from alseg_monai.segmentation import train_round, train_volume_round
from alseg_monai.segmentation.networks import get_network
from alseg_monai.segmentation.trainer import iterations_for
from alseg_monai.utils import read_json

SMALL = {"channels": (8, 16, 32, 64, 128)}


def _untrained_dice(name, data, **kwargs):
    torch.manual_seed(0)
    network = get_network(name, in_channels=1, num_classes=data.num_classes, **SMALL, **kwargs)
    return evaluate_volumes(network, data.test, data.num_classes).mean_dice


def _check_round_outputs(result, output_dir, num_models):
    assert len(result.val_dice) == num_models
    assert result.best_val_dice == max(result.val_dice)
    assert result.checkpoint_path == output_dir / "best_model.pt"
    summary = read_json(output_dir / "round_summary.json")
    assert summary["val_dice"] == pytest.approx(result.val_dice)
    assert summary["best_index"] == result.best_index
    for index in range(num_models):
        checkpoints = list((output_dir / f"model_{index}").glob("best_network_*.pt"))
        assert len(checkpoints) == 1, checkpoints  # n_saved=1: only the best is kept
    assert not list(output_dir.rglob("*.tmp"))  # atomic writes leave no temp file
    # the kept model is the restored best checkpoint of its run, and best_model.pt holds it
    best_ckpt = next((output_dir / f"model_{result.best_index}").glob("best_network_*.pt"))
    stored = torch.load(best_ckpt, weights_only=True)
    saved = torch.load(result.checkpoint_path, weights_only=True)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value.cpu(), stored[key]) and torch.equal(value.cpu(), saved[key])
    assert f"{result.best_val_dice:.4f}" in best_ckpt.name


@pytest.mark.slow
def test_full_mask_round_trains_and_beats_untrained(round_data, tmp_path):
    out = tmp_path / "round"
    result = train_round(
        round_data.train_full, round_data.val, out, round_data.num_classes, label_kind="full",
        iterations=160, batch_size=8, num_models=2, val_interval=40, seed=3, network_kwargs=SMALL,
    )
    _check_round_outputs(result, out, 2)
    csv_path = tmp_path / "test_dice.csv"
    evaluation = evaluate_volumes(result.model, round_data.test, round_data.num_classes, csv_path=csv_path)
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == evaluation.ids and len(rows) == len(round_data.test)
    assert list(rows[0]) == ["id", "patient", "class_1", "class_2", "class_3", "mean"]
    assert float(rows[0]["mean"]) == pytest.approx(evaluation.per_volume[0], abs=1e-6)
    untrained = _untrained_dice("unet", round_data)
    assert evaluation.mean_dice > untrained + 0.4


@pytest.mark.slow
def test_dmpls_scribble_round_trains_and_beats_untrained(round_data, tmp_path):
    out = tmp_path / "round"
    result = train_round(
        round_data.train_scribble, round_data.val, out, round_data.num_classes, label_kind="scribble",
        iterations=200, batch_size=6, num_models=2, val_interval=50, seed=1, network_kwargs=SMALL,
        ignore_index=round_data.ignore_index,
    )
    _check_round_outputs(result, out, 2)
    assert read_json(out / "round_summary.json")["network"] == "dmpls"
    evaluation = evaluate_volumes(result.model, round_data.test, round_data.num_classes)
    assert evaluation.mean_dice > _untrained_dice("dmpls", round_data) + 0.3


def test_round_is_deterministic_given_the_seed(round_data, tmp_path):
    kwargs = dict(label_kind="full", iterations=12, batch_size=4, num_models=1, val_interval=6,
                  network_kwargs=SMALL)
    rng_before = torch.get_rng_state()
    first = train_round(round_data.train_full, round_data.val, tmp_path / "a", round_data.num_classes, seed=5, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    second = train_round(round_data.train_full, round_data.val, tmp_path / "b", round_data.num_classes, seed=5,
                         **kwargs)
    other = train_round(round_data.train_full, round_data.val, tmp_path / "c", round_data.num_classes, seed=6,
                        **kwargs)
    a, b, c = (r.model.state_dict() for r in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.model_seeds == second.model_seeds != other.model_seeds


def test_volume_round_trains_a_3d_unet(round_data, tmp_path):
    result = train_volume_round(
        round_data.train_volumes, round_data.val, tmp_path / "vol", round_data.num_classes,
        iterations=30, num_models=1, val_interval=15, seed=0,
        network_kwargs={"channels": (4, 8, 16), "strides": ((2, 2, 1), (2, 2, 1)), "num_res_units": 1},
    )
    assert result.model.spatial_dims == 3 and len(result.val_dice) == 1
    evaluation = evaluate_volumes(result.model, round_data.test, round_data.num_classes)
    assert evaluation.scores.shape == (len(round_data.test), round_data.num_classes - 1)
    assert np.isfinite(evaluation.mean_dice)
    assert result.best_val_dice == pytest.approx(read_json(tmp_path / "vol" / "round_summary.json")["val_dice"][0])


def test_round_rejects_bad_settings(round_data, tmp_path):
    with pytest.raises(ConfigError, match="label_kind"):
        train_round(round_data.train_full, round_data.val, tmp_path, 4, label_kind="boxes")
    with pytest.raises(ConfigError, match="cannot be trained on scribble"):
        train_round(round_data.train_scribble, round_data.val, tmp_path, 4, label_kind="scribble", network="unet")
    with pytest.raises(DataError, match="scribble"):
        train_round(round_data.train_full, round_data.val, tmp_path, 4, label_kind="scribble")
    with pytest.raises(DataError, match="empty"):
        train_round([], round_data.val, tmp_path, 4)
    # train_round's ensemble size is RoundTrainer's models_per_round, which checks it
    with pytest.raises(ConfigError, match="models_per_round: expected at least 1, got 0"):
        train_round(round_data.train_full, round_data.val, tmp_path, 4, num_models=0, iterations=2)


def test_iterations_for_scales_with_the_labelled_fraction():
    assert iterations_for(0.4) == 24000
    assert iterations_for(0.02, scale=1000, minimum=50) == 50
    assert iterations_for(0.5, scale=1000, minimum=50) == 500
    with pytest.raises(ConfigError, match="fraction"):
        iterations_for(0.0)
    with pytest.raises(ConfigError, match="fraction"):
        iterations_for(1.5)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_round_logs_losses_and_tensorboard(round_data, tmp_path):
    collect = _Collect()
    stats_logger = logging.getLogger("alseg_monai.segmentation.stats")
    stats_logger.addHandler(collect)
    train_round(round_data.train_scribble, round_data.val, tmp_path, round_data.num_classes, label_kind="scribble",
                iterations=4, batch_size=4, num_models=1, val_interval=2, log_interval=2, tensorboard=True,
                progress=True, network_kwargs=SMALL)
    stats_logger.removeHandler(collect)
    assert list((tmp_path / "model_0" / "tensorboard").glob("events.out.tfevents.*"))
    logged = "\n".join(collect.messages)
    assert "pce" in logged and "pseudo_dice" in logged and "val_mean_dice" in logged
