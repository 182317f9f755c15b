"""Bad input, round two, through the bundle: a label on another voxel grid than its
image, a NaN in a label and a datalist without training entries, each refused with a
message naming the cause; and, on the command line (``python -m monai.bundle run`` in a
subprocess), the project's error as the last lines instead of inside a traceback."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bad_input_helpers import BUNDLE, CONFIGS, bundle_error
from experiments import tiny_experiment

from alseg_monai import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundle"))
from bundle_helpers import run_bundle  # noqa: E402

DATALIST = ["active_learning.json", "smoke.json", "data/datalist.json"]
SHAPE = (16, 16, 6)
HINT = re.compile(
    r"^alseg_monai stopped on bad input or settings \(full traceback: .*error\.log, or set ALSEG_TRACEBACK=1\)$"
)


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.zeros(SHAPE, np.uint8)
    label[3:12, 4:10] = 1
    label[5:8, 5:8, 1:] = 2
    return (label * 40 + rng.normal(60, 5, SHAPE)).astype(np.float32), label


def write_datalist(root: Path, training: int = 6, test: int = 2, label_affine=None) -> Path:
    """A decathlon datalist of 2 mm volumes; ``label_affine`` (a callable of the case
    number) gives a label another grid."""
    root.mkdir(parents=True, exist_ok=True)
    image_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    lists = {"training": [], "test": []}
    for k in range(training + test):
        image, label = _case(k)
        nib.save(nib.Nifti1Image(image, image_affine), str(root / f"case{k}.nii.gz"))
        affine = label_affine(k) if label_affine else None
        nib.save(nib.Nifti1Image(label, image_affine if affine is None else affine), str(root / f"case{k}_gt.nii.gz"))
        key = "training" if k < training else "test"
        lists[key].append({"image": f"case{k}.nii.gz", "label": f"case{k}_gt.nii.gz"})
    path = root / "dataset.json"
    path.write_text(json.dumps({"labels": {"0": "background", "1": "organ", "2": "core"}, **lists}))
    return path


def settings(datalist: Path, output: Path, **extra) -> dict:
    # Three classes (labels 0, 1, 2): the data config's num_classes and ignore_index, and
    # the reader's option.
    return {"dataset_dir": str(datalist), "output_dir": str(output), "image_size": 16, "num_classes": 3,
            "ignore_index": 3, "dataset_options": {"num_classes": 3}, **extra}


def api(datalist: Path, output: Path, **overrides):
    """The bundle's experiment on the datalist, built from Python."""
    return tiny_experiment(datalist, output, kind="datalist", configs=["data/datalist.json"], num_classes=3,
                           ignore_index=3, image_size=16, dataset_options={"num_classes": 3}, **overrides)


def three_mm_label(k: int):
    """Case 2's label written with 3 mm voxels, as in the issue."""
    return np.diag([3.0, 3.0, 3.0, 1.0]) if k == 2 else None


def nan_label(root: Path) -> Path:
    label = _case(3)[1].astype(np.float32)
    label[4, 4, 4] = np.nan
    nib.save(nib.Nifti1Image(label, np.diag([2.0, 2.0, 2.0, 1.0])), str(root / "case3_gt.nii.gz"))
    return root / "case3_gt.nii.gz"


def no_training(path: Path) -> Path:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["validation"], data["training"] = data["training"], []
    path.write_text(json.dumps(data))
    return path


GEOMETRY = r"case2_gt.nii.gz: spacing \(3, 3, 3\) mm does not match the image .*case2.nii.gz of spacing \(2, 2, 2\) mm"
NAN = r"case3_gt.nii.gz: 1 NaN or Inf voxels in a label; expected class indices \[0, 1, 2\]"
NO_TRAINING = r"dataset.json: the datalist's 'training' list has no entries"


def test_label_on_another_grid_refused(tmp_path):
    path = write_datalist(tmp_path / "data", label_affine=three_mm_label)
    found = bundle_error(DATALIST, **settings(path, tmp_path / "out"))
    assert isinstance(found, DataError) and re.search(GEOMETRY, str(found)), str(found)
    assert f"{tmp_path / 'data' / 'case2_gt.nii.gz'}:" in str(found) and "resample_labels" in str(found)
    assert not list((tmp_path / "out").glob("*/repeat_0/round_0/models")), "training started"


def test_resample_labels_option_through_the_bundle_config(tmp_path):
    """``dataset_options#resample_labels`` reaches the reader: the 3 mm label is loaded on
    the image's 2 mm grid (no training: the experiment is only prepared)."""
    from monai.bundle import ConfigWorkflow

    path = write_datalist(tmp_path / "data", label_affine=three_mm_label)
    options = settings(path, tmp_path / "out", dataset_options={"num_classes": 3, "resample_labels": True})
    workflow = ConfigWorkflow(config_file=[str(CONFIGS / c) for c in DATALIST], meta_file=str(CONFIGS / "metadata.json"),
                              bundle_root=str(BUNDLE), **options)
    hook = sys.excepthook
    try:
        workflow.initialize()  # installs the bundle's error hook
    finally:
        sys.excepthook = hook
    experiment = workflow.parser.get_parsed_content("experiment")
    experiment.prepare()
    record = next(v for v in experiment.data.index.volumes if v["id"] == "case2")
    assert record["resample"] == {"label": 0}
    # image voxel j lies at 2 j mm, nearest to label voxel rint(2 j / 3) (3 mm voxels)
    nearest = [np.rint(2 * np.arange(n) / 3).astype(int) for n in SHAPE]
    expected = _case(2)[1][np.ix_(*nearest)]
    np.testing.assert_array_equal(experiment.cache.volume("case2")["label_original"], expected)


def test_nan_in_a_label_named_as_such(tmp_path):
    path = write_datalist(tmp_path / "data")
    nan_label(tmp_path / "data")
    found = bundle_error(DATALIST, **settings(path, tmp_path / "out"))
    assert isinstance(found, DataError) and re.search(NAN, str(found)), str(found)


def test_datalist_without_training_entries(tmp_path):
    path = no_training(write_datalist(tmp_path / "data"))
    found = bundle_error(DATALIST, **settings(path, tmp_path / "out"))
    assert isinstance(found, DataError) and re.search(NO_TRAINING, str(found)), str(found)
    assert str(path) in str(found) and "'training'" in str(found)
    with pytest.raises(DataError, match=NO_TRAINING):
        api(path, tmp_path / "api", split={"method": "layout", "fractions": [0.8, 0.2]}).prepare()


def test_split_without_training_patients_is_a_config_error(tmp_path):
    path = write_datalist(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"split: no training patient .*split#fractions"):
        api(path, tmp_path / "api", split={"method": "random", "fractions": [0, 0.5, 0.5]}).prepare()


# the command line ---------------------------------------------------------------------------
def _cli(case: str, tmp_path: Path, env: dict | None = None):
    if case == "geometry":
        path = write_datalist(tmp_path / "data", label_affine=three_mm_label)
    elif case == "nan_label":
        path = write_datalist(tmp_path / "data")
        nan_label(tmp_path / "data")
    else:
        path = no_training(write_datalist(tmp_path / "data"))
    return run_bundle(DATALIST, settings(path, tmp_path / "out"), timeout=300, env={"ALSEG_TRACEBACK": "", **(env or {})})


@pytest.mark.parametrize("case, message", [("geometry", GEOMETRY), ("nan_label", NAN), ("no_training", NO_TRAINING)])
def test_command_line_ends_with_the_error(case, message, tmp_path):
    result = _cli(case, tmp_path)
    assert result.returncode != 0
    last = result.stderr.rstrip("\n").splitlines()[-2:]
    assert HINT.match(last[0]), result.stderr[-3000:]
    assert last[1].startswith("DataError: ") and re.search(message, last[1]), result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Failed to evaluate" not in result.stderr
    log = (tmp_path / "out" / "error.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "Failed to evaluate" in log and re.search(message, log)


def test_command_line_full_traceback_on_request(tmp_path):
    result = _cli("geometry", tmp_path, {"ALSEG_TRACEBACK": "1"})
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr and re.search(GEOMETRY, result.stderr)
    assert "alseg_monai stopped" not in result.stderr
    # Python's own report: the DataError, then MONAI's RuntimeError wrapping it, last
    assert result.stderr.rindex("DataError: ") < result.stderr.rindex("RuntimeError: Failed to evaluate")


def test_command_line_keeps_the_traceback_of_other_errors(tmp_path):
    """A bug (here an unknown name in an expression) is not the user's input: Python's
    full traceback, no hint."""
    path = write_datalist(tmp_path / "data")
    overrides = settings(path, tmp_path / "out", run="['$undefined_in_this_bundle()']")
    result = run_bundle(DATALIST, overrides, timeout=300, env={"ALSEG_TRACEBACK": ""})
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "NameError: name 'undefined_in_this_bundle' is not defined" in result.stderr
    assert "alseg_monai stopped" not in result.stderr and not (tmp_path / "out" / "error.log").exists()
