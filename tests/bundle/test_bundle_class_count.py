"""The class count stated once (issue 25, point 2), through the bundle: the bundle's
``num_classes`` (the data config's, or ``--num_classes N``) is what every reader, the
datalist options and the scribbles' ``ignore_index`` (``"@num_classes"``) use; a datalist
without ``labels`` runs with ``--num_classes N`` alone; a wrong count fails before any
training, naming the values the label files hold."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest
from bundle_helpers import run_bundle
from layouts import acdc_volume, write_acdc_patient, write_nifti

from alseg_monai import ConfigError, DataError
from alseg_monai.loop.config import load_config

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "data"), str(TESTS / "hardening")]
from bad_input_helpers import bundle_error  # noqa: E402
from test_reader_chaos import chaos_root  # noqa: E402,F401  (fixtures: the readers' own test layouts)
from test_reader_davis import davis_root  # noqa: E402,F401
from test_reader_mscmr import mscmr_root  # noqa: E402,F401
from test_reader_wsl4mis import wsl4mis_root  # noqa: E402,F401

DATALIST = ["active_learning.json", "smoke.json", "data/datalist.json"]
QUIET = {"progress": False, "image_size": 16, "cache_dir": "", "strategies": ["random"], "budgets": [0.5]}


def write_datalist(root: Path, labels: dict | None = None, training: int = 4, test: int = 2) -> Path:
    """Volumes of four classes (labels 0-3, scribbles 0-3 with 4 unannotated), listed in a
    datalist JSON without ``labels`` unless given, as most hand-made ones are."""
    lists: dict[str, list] = {"training": [], "test": []}
    for k in range(training + test):
        image, label, scribble = acdc_volume(seed=k)
        write_nifti(root / f"case{k}.nii.gz", image)
        write_nifti(root / f"case{k}_gt.nii.gz", label)
        item = {"image": f"case{k}.nii.gz", "label": f"case{k}_gt.nii.gz"}
        if k < training:
            write_nifti(root / f"case{k}_scribble.nii.gz", scribble)
            item["scribble"] = f"case{k}_scribble.nii.gz"
        lists["training" if k < training else "test"].append(item)
    path = root / "datalist.json"
    path.write_text(json.dumps({**({"labels": labels} if labels else {}), **lists}))
    return path


@pytest.fixture
def datalist(tmp_path) -> Path:
    return write_datalist(tmp_path / "data")


def prepared(kind: str, root: Path, output: Path, **overrides):
    """The bundle config of ``configs/data/<kind>.json``, parsed by MONAI, and its
    experiment read, split and loaded (no training)."""
    parser = load_config([f"data/{kind}.json", "smoke.json"],
                         {"dataset_dir": str(root), "output_dir": str(output), **QUIET, **overrides})
    experiment = parser.get_parsed_content("experiment")
    experiment.prepare()
    return parser, experiment


def assert_one_count(parser, experiment, count: int) -> None:
    """``count`` reached the reader, the slice cache and every scribble component."""
    index = experiment.data.index
    assert (index.num_classes, index.ignore_index) == (count, count)
    assert (experiment.cache.num_classes, experiment.cache.ignore_index) == (count, count)
    assert experiment.settings["num_classes"] == experiment.settings["ignore_index"] == count
    for key in ("ignore_index", "scribble_loss#ignore_index", "scribble_train_transforms#ignore_index",
                "val_transforms#transforms#0#ignore_index"):
        assert parser.get_parsed_content(key) == count, key
    assert parser.get_parsed_content("scribble_loss").pce.ignore_index == count


def no_training(output: Path) -> None:
    assert not list(output.glob("**/models")) and not list(output.glob("encoder*")), "training started"


# Each reader on its own test layout, with its data config; the random split of these few
# patients (counts) leaves every split one patient at least.
READERS = [
    ("acdc", "acdc_root", 4, [2, 1, 1]),
    ("wsl4mis_h5", "wsl4mis_root", 4, [1, 1, 1]),
    ("mscmr", "mscmr_root", 4, [3, 1, 1]),
    ("chaos", "chaos_root", 2, [2, 1, 1]),
    ("davis", "davis_root", 2, [1, 1, 1]),
]


@pytest.mark.parametrize("kind, fixture, count, split", READERS, ids=[r[0] for r in READERS])
def test_each_reader_takes_the_data_configs_count(kind, fixture, count, split, request, tmp_path):
    root = request.getfixturevalue(fixture)
    split = {"method": "random", "fractions": split, "seed": 0, "lists": {}}
    assert_one_count(*prepared(kind, root, tmp_path / "right", split=split), count)
    # One class too many: no label holds it, named before any training.
    with pytest.raises(ConfigError) as info:
        prepared(kind, root, tmp_path / "over", split=split, num_classes=count + 1)
    values = list(range(count))
    assert re.search(rf"num_classes={count + 1}, but the labels of the {kind} data at .* hold the values "
                     rf"{re.escape(str(values))}: no voxel of class {count}; set num_classes to {count} "
                     rf"\(--num_classes {count} or the data config\)", str(info.value)), str(info.value)
    no_training(tmp_path / "over")


def test_acdc_layout_with_a_fifth_class_needs_only_num_classes(tmp_path):
    """The reader takes the bundle's count (before, it kept its own 4 and the run stopped)."""
    root = tmp_path / "ACDC"
    for n in range(1, 5):
        folder = write_acdc_patient(root, n, seed=n, scribbles=False)
        for gt in folder.glob("*_gt.nii.gz"):
            label = acdc_volume(seed=n)[1]
            label[:3, :3] = 4
            write_nifti(gt, label)
    split = {"method": "random", "fractions": [2, 1, 1], "seed": 0, "lists": {}}
    assert_one_count(*prepared("acdc", root, tmp_path / "out", split=split, num_classes=5), 5)
    # and the data config's 4 fails on the first label, naming its values
    with pytest.raises(DataError, match=r"patient\d+_frame\d+_gt.nii.gz: label values \[4\] outside the classes; "
                                        r"expected values in \[0, 1, 2, 3\] \(num_classes=4\), and the file holds "
                                        r"the values \[0, 1, 2, 3, 4\]; if these are the dataset's classes, set "
                                        r"num_classes to 5 \(--num_classes 5 or the data config\)"):
        prepared("acdc", root, tmp_path / "four", split=split)
    no_training(tmp_path / "four")


def test_datalist_without_labels_with_num_classes_alone(datalist, tmp_path):
    """The datalist reader, the options and the scribbles' ignore_index follow --num_classes 4
    (data/datalist.json says 2); the old third statement in dataset_options is accepted
    when it agrees."""
    assert_one_count(*prepared("datalist", datalist, tmp_path / "one", num_classes=4), 4)
    parser, experiment = prepared("datalist", datalist, tmp_path / "two", num_classes=4,
                                  dataset_options={"num_classes": 4})
    assert experiment.data.index.num_classes == 4


def test_datalist_run_on_scribbles_from_the_command_line(datalist, tmp_path):
    """``python -m monai.bundle run ... --num_classes 4``: one DMPLS round on the datalist's
    scribbles (unannotated 4, outside the classes only if ignore_index follows)."""
    output = tmp_path / "run"
    result = run_bundle(DATALIST, {"dataset_dir": str(datalist), "output_dir": str(output), "num_classes": 4,
                                   "label_kind": "scribble", "strategies": ["random"], "budgets": [0.4],
                                   "image_size": 16, "synthesize_scribbles": False,
                                   "segmentation#min_iterations": 4, "segmentation#val_interval": 4,
                                   "segmentation#iterations_scale": 10, "segmentation#scribble_batch_size": 2},
                        timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    settings = json.loads((output / "settings.json").read_text(encoding="utf-8"))
    assert settings["num_classes"] == settings["ignore_index"] == 4
    with open(output / "results.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["strategy"], float(r["budget"])) for r in rows] == [("random", 0.4)]


@pytest.mark.parametrize("num_classes, error, pattern", [
    (2, DataError, r"case\d_gt.nii.gz: label values \[2, 3\] outside the classes; expected values in \[0, 1\] "
                   r"\(num_classes=2\), and the file holds the values \[0, 1, 2, 3\]; if these are the dataset's "
                   r"classes, set num_classes to 4 \(--num_classes 4 or the data config\)"),
    (5, ConfigError, r"num_classes=5, but the labels of the datalist data at .*datalist.json \(6 labelled volumes\) "
                     r"hold the values \[0, 1, 2, 3\]: no voxel of class 4; set num_classes to 4 \(--num_classes 4 "
                     r"or the data config\), or name every class in the datalist's 'labels'"),
], ids=["too_few", "too_many"])
def test_wrong_count_fails_early_naming_the_values(datalist, tmp_path, num_classes, error, pattern):
    found = bundle_error(DATALIST, dataset_dir=str(datalist), output_dir=str(tmp_path / "out"),
                         num_classes=num_classes, **QUIET)
    assert isinstance(found, error) and re.search(pattern, str(found)), str(found)
    no_training(tmp_path / "out")


def test_count_stated_twice_differently_names_both(tmp_path):
    labelled = write_datalist(tmp_path / "labelled", labels={"0": "background", "1": "rv", "2": "myo"})
    found = bundle_error(DATALIST, dataset_dir=str(labelled), output_dir=str(tmp_path / "a"), num_classes=4)
    assert isinstance(found, ConfigError), found
    assert re.search(r"num_classes=4, but 'labels' in .*datalist.json names 3 classes: .*; set num_classes to 3 "
                     r"\(--num_classes 3 or the data config\), or correct 'labels'", str(found)), str(found)

    plain = write_datalist(tmp_path / "plain")
    found = bundle_error(DATALIST, dataset_dir=str(plain), output_dir=str(tmp_path / "b"), num_classes=4,
                         dataset_options={"num_classes": 3})
    assert isinstance(found, ConfigError), found
    assert str(found).startswith("dataset_options#num_classes=3, but num_classes=4; the reader takes num_classes "
                                 "from the run's num_classes: remove num_classes from dataset_options"), str(found)

    found = bundle_error(DATALIST, dataset_dir=str(plain), output_dir=str(tmp_path / "c"), num_classes=4,
                         ignore_index=2)
    assert isinstance(found, ConfigError), found
    assert str(found).startswith("ignore_index=2 is one of the classes 0..3 (num_classes=4)"), str(found)
    for run in "abc":
        no_training(tmp_path / run)
