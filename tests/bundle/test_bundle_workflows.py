"""The single-step workflows as config files: ``evaluate.json``, ``inference.json``,
``train.json`` and ``contrastive.json`` built on ``active_learning.json``'s components and
run in this process, as ``python -m monai.bundle run`` runs them (``run`` item by item).

A "trained round" here is a fresh network's weights saved as the round's
``best_model.pt`` with its ``training.json``: the workflows must give what the
experiment's own code gives for it (3D Dice, predictions), bit for bit on the CPU."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from alseg_monai.errors import ConfigError, DataError, find_alseg_error
from alseg_monai.evaluation import evaluate_volumes, predict
from alseg_monai.loop import (
    ResizeToSourced,
    inference_datalist,
    load_config,
    load_round_network,
    read_labelled_list,
    round_kind,
)

BASE = ["data/phantom.json", "smoke.json"]
TINY = {"phantom#num_patients": 6, "phantom#image_size": 32, "strategies": ["random"], "budgets": [0.1],
        "progress": False}


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workflows") / "phantom"


def parse(phantom_root: Path, output_dir: Path, overlay: str | None = None, **overrides):
    configs = BASE + ([overlay] if overlay else [])
    return load_config(configs, {"phantom#root": str(phantom_root), "output_dir": str(output_dir), **TINY,
                                 **overrides})


def run_workflow(parser) -> None:
    """The ``run`` expressions in order, as MONAI's ConfigWorkflow runs them."""
    for index in range(len(parser["run"])):
        try:
            parser.get_parsed_content(f"run#{index}")
        except Exception as err:  # MONAI wraps a component's error
            raise find_alseg_error(err) or err


@pytest.fixture(scope="module")
def trained_round(phantom_root, tmp_path_factory) -> Path:
    """A round folder holding a fresh 2D UNet's weights (not trained: its predictions vary)."""
    output = tmp_path_factory.mktemp("runs") / "run"
    round_dir = output / "random" / "repeat_0" / "round_0"
    (round_dir / "models").mkdir(parents=True)
    network = parse(phantom_root, output).get_parsed_content("trainer").build(seed=3)
    torch.save(network.state_dict(), round_dir / "models" / "best_model.pt")
    (round_dir / "training.json").write_text(json.dumps({"label_kind": "full", "unit": "slice"}), encoding="utf-8")
    return round_dir


@pytest.mark.parametrize("overlay", ["train.json", "evaluate.json", "inference.json", "contrastive.json"])
def test_every_key_of_an_overlay_is_used(overlay, phantom_root, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="alseg_monai"):
        parse(phantom_root, tmp_path / "out", overlay)
    assert "adds the key" not in caplog.text


def test_evaluate_gives_the_experiments_test_dice(trained_round, phantom_root):
    output = trained_round.parents[2]
    parser = parse(phantom_root, output, "evaluate.json", checkpoint=str(trained_round))
    run_workflow(parser)

    experiment = parser.get_parsed_content("experiment")
    network = load_round_network(parser.get_parsed_content("network_def"), trained_round)
    expected = evaluate_volumes(network, experiment.data.test_volumes, 4, csv_path=output / "expected.csv")
    assert expected.mean_dice > 0  # a fresh network's predictions overlap the labels somewhere
    evaluation = json.loads((trained_round / "evaluation.json").read_text(encoding="utf-8"))
    assert evaluation["volumes"] == expected.ids
    assert evaluation["dice"] == pytest.approx(expected.mean_dice, abs=1e-12)
    assert evaluation["dice_per_volume"] == pytest.approx(expected.per_volume.tolist(), abs=1e-12)
    assert (trained_round / "test_dice.csv").read_text() == (output / "expected.csv").read_text()
    assert parser.get_parsed_content("evaluator").state.metrics["test_mean_dice"] == evaluation["dice"]


def test_inference_writes_the_predictions_with_the_source_grid(trained_round, phantom_root, tmp_path):
    images = sorted(phantom_root.glob("patient00[12]/*_frame01.nii.gz"))
    target = tmp_path / "new" / "predictions"  # created by the workflow
    parser = parse(phantom_root, trained_round.parents[2], "inference.json", checkpoint=str(trained_round / "models"
                                                                                             / "best_model.pt"),
                   **{"inference#input": [str(p) for p in images], "inference#output_dir": str(target)})
    run_workflow(parser)

    network = load_round_network(parser.get_parsed_content("network_def"), trained_round)
    preprocessing = parser.get_parsed_content("val_transforms")
    assert sorted(p.name for p in target.iterdir()) == [p.name.replace(".nii.gz", "_seg.nii.gz") for p in images]
    for image in images:
        written, source = nib.load(str(target / image.name.replace(".nii.gz", "_seg.nii.gz"))), nib.load(str(image))
        assert written.shape == source.shape and np.array_equal(written.affine, source.affine)
        item = preprocessing(inference_datalist([image])[0])
        assert np.array_equal(np.asarray(written.dataobj), predict(network, item["image"], item["spatial_shape"]))


def test_inference_postprocessing_writes_a_one_slice_volume(phantom_root, tmp_path):
    parser = parse(phantom_root, tmp_path / "run", "inference.json", **{"inference#output_dir": str(tmp_path)})
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    source = tmp_path / "scan.v1.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 24, 1), np.float32), affine), str(source))
    logits = torch.zeros(4, 32, 32, 1)
    logits[2, :16] = 1.0  # class 2 on the top half, class 0 elsewhere
    parser.get_parsed_content("postprocessing")({"pred": logits, "spatial_shape": [20, 24], "affine": affine,
                                                 "filename_or_obj": str(source)})
    written = nib.load(str(tmp_path / "scan.v1_seg.nii.gz"))
    assert np.array_equal(written.affine, affine)
    classes = np.asarray(written.dataobj).reshape(20, 24)
    assert (classes[:10] == 2).all() and (classes[10:] == 0).all()


def test_resize_to_source_restores_the_stored_grid():
    classes = torch.arange(4).repeat_interleave(2).reshape(1, 8, 1, 1).expand(1, 8, 8, 3).float()
    affine = np.eye(4) * 2
    out = ResizeToSourced("pred")({"pred": classes, "spatial_shape": (4, 6), "affine": affine, "filename_or_obj": "x"})
    pred = out["pred"]
    assert pred.shape == (1, 4, 6, 3) and pred.dtype == torch.int64
    assert pred[0, :, 0, 0].tolist() == [0, 1, 2, 3]
    assert np.array_equal(pred.affine.numpy(), affine) and pred.meta["filename_or_obj"] == "x"


def test_the_workflows_name_a_wrong_input(tmp_path):
    with pytest.raises(ConfigError, match="is not a trained round"):
        round_kind(tmp_path)
    with pytest.raises(ConfigError, match="give the folder of a trained round"):
        round_kind(None)
    with pytest.raises(DataError, match="no NIfTI / NRRD / MHA image in this folder"):
        inference_datalist(tmp_path)
    with pytest.raises(ConfigError, match="inference#input: give a folder"):
        inference_datalist(None)
    with pytest.raises(ConfigError, match="labelled_list: give the file"):
        read_labelled_list(None)
    (tmp_path / "ids.csv").write_text("slice\nx\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no 'id' column"):
        read_labelled_list(tmp_path / "ids.csv")


@pytest.mark.parametrize("label_kind, trainer", [("full", "trainer"), ("scribble", "scribble_trainer")])
def test_train_uses_the_round_trainer_of_the_label_kind(label_kind, trainer, phantom_root, tmp_path):
    parser = parse(phantom_root, tmp_path / "out", "train.json", label_kind=label_kind)
    assert parser.get_parsed_content("round_trainer") is parser.get_parsed_content(trainer)


def test_train_one_round_on_a_labelled_list(phantom_root, tmp_path):
    parser = parse(phantom_root, tmp_path / "out", "train.json", labelled_list=str(tmp_path / "ids.txt"),
                   **{"segmentation#iterations_scale": 2, "segmentation#min_iterations": 2,
                      "segmentation#val_interval": 2, "segmentation#batch_size": 2,
                      "segmentation#tensorboard": False})
    experiment = parser.get_parsed_content("experiment")
    experiment.prepare()
    ids = experiment.pool_ids[:3]
    (tmp_path / "ids.txt").write_text("\n".join(ids), encoding="utf-8")
    run_workflow(parser)
    metrics = json.loads((tmp_path / "out/manual/metrics.json").read_text(encoding="utf-8"))
    assert metrics["labelled_ids"] == ids and metrics["iterations"] == 2
    with open(tmp_path / "out/manual/test_dice.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(experiment.data.test_volumes)
    assert round_kind(tmp_path / "out/manual") == "full"


@pytest.mark.slow
def test_contrastive_writes_the_embeddings_the_experiment_reads(phantom_root, tmp_path):
    parser = parse(phantom_root, tmp_path / "out", "contrastive.json", strategies=["gcl_coreset"],
                   **{"encoder_def#feature_dim": 16, "encoder_def#projection_dim": 8, "sampler#batch_size": 6,
                      "encoder#epochs": 1})
    run_workflow(parser)
    experiment = parser.get_parsed_content("experiment")
    ids = json.loads((tmp_path / "out/encoder/embedding_ids.json").read_text(encoding="utf-8"))
    features = np.load(tmp_path / "out/encoder/embeddings.npy")
    assert ids == experiment.pool_ids and features.shape == (len(ids), 16)
    assert (tmp_path / "out/encoder/encoder.pt").is_file()
    # the AL run reuses them rather than training the encoder again
    assert np.array_equal(experiment.embeddings("gcl"), features)


@pytest.mark.parametrize("overlay", [None, "contrastive.json"])
def test_encoder_threads_reach_the_encoder_training_and_embedding(phantom_root, tmp_path, monkeypatch, overlay):
    # encoder#threads 1 on a two-thread process: the experiment's encoder (and the contrastive
    # workflow's) trains and embeds with one thread, then the process has its two again.
    from alseg_monai.contrastive import SimCLREncoder

    seen = []
    features = SimCLREncoder.features
    monkeypatch.setattr(SimCLREncoder, "features",
                        lambda self, x: seen.append((self.training, torch.get_num_threads())) or features(self, x))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tiny = {"encoder_def#feature_dim": 16, "encoder_def#projection_dim": 8, "sampler#batch_size": 6,
                "encoder#epochs": 1, "strategies": ["gcl_coreset"]}
        parser = parse(phantom_root, tmp_path / "out", overlay, **tiny, **{"encoder#threads": 1})
        experiment = parser.get_parsed_content("experiment")
        assert experiment.encoder_threads == 1
        if overlay:
            run_workflow(parser)
        else:
            experiment.embeddings("gcl")
        assert {training for training, _ in seen} == {True, False}  # training and embedding both ran
        assert {threads for _, threads in seen} == {1}
        assert torch.get_num_threads() == 2
        # A property of the machine, as workers: the recorded settings do not change.
        other = parse(phantom_root, tmp_path / "other", overlay, **tiny, **{"encoder#threads": None})
        other = other.get_parsed_content("experiment")
        assert other.encoder_threads is None and other.settings == experiment.settings
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("bad", [0, "two", 1.5])
def test_bad_encoder_threads_are_refused_naming_the_key(phantom_root, tmp_path, bad):
    parser = parse(phantom_root, tmp_path / "out", **{"encoder#threads": bad})
    with pytest.raises(Exception) as raised:
        parser.get_parsed_content("experiment")
    error = find_alseg_error(raised.value)
    assert isinstance(error, ConfigError) and "encoder_threads" in str(error)
