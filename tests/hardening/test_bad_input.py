"""Bad input, each case through the bundle (``monai.bundle.scripts.run``, what
``python -m monai.bundle run`` calls) and through the Python API: the project's
exception, raised before any training, with a message naming the file or key."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bad_input_helpers import bundle_error
from experiments import tiny_experiment
from layouts import locale_kept

from alseg_monai import ConfigError, DataError
from alseg_monai.data import make_phantom
from alseg_monai.loop import ActiveLearningExperiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from bundle_helpers import run_bundle  # noqa: E402

AL = ["active_learning.json", "smoke.json"]
# Bundle keys ("a#b" for nested ones) over tests/experiments.py's tiny settings.
TINY = {"segmentation#iterations_scale": 50, "segmentation#min_iterations": 5, "segmentation#val_interval": 5}
# The class settings of a two-class datalist (labels "0" and "1"), as in configs/data/datalist.json.
TWO_CLASSES = {"num_classes": 2, "ignore_index": 2}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_phantom(tmp_path_factory.mktemp("phantom") / "ph", 6, image_size=32, seed=2, progress=False)


@pytest.fixture
def dataset(phantom, tmp_path) -> Path:
    """A private copy of the phantom to damage."""
    return Path(shutil.copytree(phantom, tmp_path / "data"))


def api(dataset: Path, output: Path, kind: str = "acdc", **overrides) -> ActiveLearningExperiment:
    """The bundle's experiment built from Python (:func:`~alseg_monai.loop.load_experiment`)."""
    return tiny_experiment(dataset, output, kind=kind, **{**TINY, **overrides})


def bundle(dataset: Path, output: Path, **overrides):
    settings = {"dataset_kind": "acdc", "dataset_dir": str(dataset), "output_dir": str(output), "image_size": 32,
                **overrides}
    return bundle_error(AL, **settings)


def both(dataset: Path, tmp_path: Path, error: type, pattern: str, api_overrides=None, bundle_overrides=None):
    """The same case through the Python API and the bundle; nothing trained in either."""
    with pytest.raises(error, match=pattern):
        api(dataset, tmp_path / "api", **(api_overrides or {})).run()
    found = bundle(dataset, tmp_path / "bundle", **(bundle_overrides or {}))
    assert isinstance(found, error) and __import__("re").search(pattern, str(found)), str(found)
    for run in ("api", "bundle"):
        assert not list((tmp_path / run).glob("*/repeat_0/round_0/models")), "training started"


def _rewrite(path: Path, change) -> None:
    image = nib.load(str(path))
    array = np.asanyarray(image.dataobj).copy()
    nib.save(nib.Nifti1Image(change(array), image.affine), str(path))


def test_dataset_dir_missing(tmp_path):
    both(tmp_path / "nowhere", tmp_path, DataError, "nowhere: dataset folder not found")


def test_dataset_dir_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    both(tmp_path / "empty", tmp_path, DataError, "empty dataset")


def test_truncated_nifti(dataset, tmp_path):
    path = dataset / "patient002" / "patient002_frame01.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    both(dataset, tmp_path, DataError, "patient002_frame01.nii.gz")


def test_nan_voxels(dataset, tmp_path):
    path = dataset / "patient003" / "patient003_frame01.nii.gz"
    _rewrite(path, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 5, np.nan, a.astype(np.float32)))
    both(dataset, tmp_path, DataError, r"patient003_frame01.nii.gz: 1 NaN or Inf")


def test_inf_voxels(dataset, tmp_path):
    path = dataset / "patient003" / "patient003_frame01.nii.gz"
    _rewrite(path, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 5, np.inf, a.astype(np.float32)))
    both(dataset, tmp_path, DataError, r"patient003_frame01.nii.gz: 1 NaN or Inf")


def test_label_values_outside_classes(dataset, tmp_path):
    gt = next((dataset / "patient004").glob("*_gt.nii.gz"))
    _rewrite(gt, lambda a: np.where(a == 3, 9, a).astype(np.uint8))
    both(dataset, tmp_path, DataError, rf"{gt.name}: label values \[9\] outside the classes")


def test_image_label_shape_mismatch(dataset, tmp_path):
    gt = next((dataset / "patient001").glob("*_gt.nii.gz"))
    _rewrite(gt, lambda a: a[:, :, :-1])
    both(dataset, tmp_path, DataError, rf"{gt.name}: shape .* does not match")


def test_budgets_not_increasing(dataset, tmp_path):
    both(dataset, tmp_path, ConfigError, "does not increase", {"budgets": [0.2, 0.1]}, {"budgets": [0.2, 0.1]})


def test_budgets_above_100_percent(dataset, tmp_path):
    both(dataset, tmp_path, ConfigError, "outside", {"budgets": [0.5, 1.5]}, {"budgets": [0.5, 1.5]})


def test_budgets_too_fine_for_the_pool(dataset, tmp_path):
    both(dataset, tmp_path, ConfigError, "no more than", {"budgets": [0.001, 0.002]}, {"budgets": [0.001, 0.002]})


def test_encoder_batch_not_divisible_by_group_size(dataset, tmp_path):
    # groupings patient and volume: groups of 3 slices
    both(dataset, tmp_path, ConfigError, "batch_size must be a positive multiple of the group size 3.* got 7",
         {"sampler#batch_size": 7, "strategies": ["gcl_coreset"]}, {"sampler#batch_size": 7})


def test_unknown_strategy_lists_known(dataset, tmp_path):
    both(dataset, tmp_path, ConfigError, "unknown strategy 'corset'.*coreset", {"strategies": ["corset"]},
         {"strategies": ["corset"]})


def test_boolean_neither_true_nor_false(dataset, tmp_path):
    # `--progress false` on the command line arrives as the string "false" and is accepted
    # (tests/bundle/test_bundle_components.py); a value that is no boolean is refused.
    both(dataset, tmp_path, ConfigError, "progress='maybe'; expected true or false", {"progress": "maybe"},
         {"progress": "maybe"})
    assert api(dataset, tmp_path / "api", progress="false").progress is False


def test_misspelt_config_key_named(dataset, tmp_path):
    # The bundle checks the keys of its command line (`python -m monai.bundle run`, which
    # an in-process run lacks), the Python API those of its overrides.
    with pytest.raises(ConfigError, match="unknown config key 'budgts'.*did you mean 'budgets'"):
        api(dataset, tmp_path / "api", budgts=[0.1])
    result = run_bundle(AL, {"dataset_kind": "acdc", "dataset_dir": str(dataset), "output_dir": str(tmp_path / "bundle"),
                             "budgts": [0.1]}, timeout=300, env={"ALSEG_TRACEBACK": ""})
    last = result.stderr.rstrip("\n").splitlines()[-1]
    assert result.returncode != 0 and last.startswith("ConfigError: unknown config key 'budgts'"), result.stderr[-3000:]
    assert "did you mean 'budgets'" in last
    assert not (tmp_path / "api").exists() and not (tmp_path / "bundle").exists()


def test_duplicate_slice_ids(tmp_path):
    """Two datalist entries naming the same image give the same volume and slice ids."""
    import json

    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3), np.float32), np.eye(4)), str(image))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.uint8), np.eye(4)), str(tmp_path / "case_gt.nii.gz"))
    entry = {"image": "case.nii.gz", "label": "case_gt.nii.gz"}
    (tmp_path / "list.json").write_text(json.dumps({"labels": {"0": "bg", "1": "fg"}, "training": [entry, entry]}))
    both(tmp_path / "list.json", tmp_path, DataError, "duplicate", {"kind": "datalist", **TWO_CLASSES},
         {"dataset_kind": "datalist", **TWO_CLASSES})


def test_scribble_without_annotated_pixel_is_kept_with_a_warning(dataset, tmp_path, caplog):
    """Graceful: such a slice adds no supervision; the run goes on and says so."""
    for path in dataset.glob("*/*_scribble.nii.gz"):
        _rewrite(path, lambda a: np.full_like(a, 4))
    with caplog.at_level(logging.WARNING):
        rows = api(dataset, tmp_path / "api", label_kind="scribble", budgets=[0.1]).run()
    assert len(rows) == 1
    assert "has no annotated pixel" in caplog.text


def test_patient_grouping_dropped_for_one_volume_per_patient(tmp_path, caplog):
    """Warn and drop, as the paper did for CHAOS, MS-CMR and DAVIS."""
    import json

    entries = []
    for k in range(6):
        image, label = tmp_path / f"case{k}.nii.gz", tmp_path / f"case{k}_gt.nii.gz"
        rng = np.random.default_rng(k)
        nib.save(nib.Nifti1Image(rng.random((16, 16, 6)).astype(np.float32), np.eye(4)), str(image))
        nib.save(nib.Nifti1Image((rng.random((16, 16, 6)) > 0.5).astype(np.uint8), np.eye(4)), str(label))
        entries.append({"image": image.name, "label": label.name})
    (tmp_path / "list.json").write_text(json.dumps({"labels": {"0": "bg", "1": "fg"}, "training": entries}))
    exp = api(tmp_path / "list.json", tmp_path / "out", kind="datalist", image_size=16, strategies=["gcl_coreset"],
              **TWO_CLASSES, **{"sampler#groupings": ["patient", "volume"], "sampler#batch_size": 8})
    with caplog.at_level(logging.WARNING):
        exp.prepare()
        spec = exp.encoder_spec("gcl")
    assert list(spec.groupings()) == ["volume"]
    assert spec.loss.weights["patient"] == 0.0 and spec.loss.weights["volume"] > 0
    assert "patient grouping duplicates the volume grouping" in caplog.text


def test_chaos_mask_count_differs_from_dicom_slices(tmp_path):
    import SimpleITK as sitk
    from PIL import Image

    patient = tmp_path / "CHAOS" / "1"
    (patient / "DICOM_anon").mkdir(parents=True)
    (patient / "Ground").mkdir()
    volume = sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16))
    for z in range(3):
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        image = volume[:, :, z]
        image.SetMetaData("0020|0013", str(z + 1))
        writer.SetFileName(str(patient / "DICOM_anon" / f"i{z:04d}.dcm"))
        with locale_kept():
            writer.Execute(image)
    for z in range(2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(patient / "Ground" / f"liver_GT_{z:03d}.png")
    both(tmp_path / "CHAOS", tmp_path, DataError, r"Ground: 2 PNG masks for 3 DICOM slices", {"kind": "chaos", **TWO_CLASSES},
         {"dataset_kind": "chaos", **TWO_CLASSES})
