"""The synthetic longitudinal brain MR phantom: datalist layout, classes and their slices,
the two scans of a patient, reproducibility, reuse and refusal, and its bundle data config."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from alseg_monai.data import make_brain_phantom, read_dataset
from alseg_monai.data.brain import BRAIN_LABELS, SCANS
from alseg_monai.data.phantom import slice_deviation_statistics
from alseg_monai.data.synthetic import MANIFEST
from alseg_monai.errors import ConfigError
from alseg_monai.utils import atomic_write_json, read_json

SIZE = 64
NUM_PATIENTS = 6
DATA_CONFIG = "data/brain_phantom.json"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return make_brain_phantom(tmp_path_factory.mktemp("brain") / "root", NUM_PATIENTS, image_size=SIZE, seed=3)


@pytest.fixture(scope="module")
def index(phantom):
    return read_dataset("datalist", phantom)


@pytest.fixture(scope="module")
def volumes(index) -> dict[str, tuple[dict, nib.Nifti1Image, np.ndarray, np.ndarray]]:
    """volume id -> (record, NIfTI image, image array, label array)."""
    loaded = {}
    for volume in index.volumes:
        image = nib.load(volume["image"])
        loaded[volume["id"]] = (volume, image, np.asarray(image.dataobj), np.asarray(nib.load(volume["label"]).dataobj))
    return loaded


def load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def slices_with(label: np.ndarray, *classes: int) -> np.ndarray:
    """(D,) whether each slice holds any of ``classes``."""
    return np.isin(label, classes).any(axis=(0, 1))


def test_datalist_json_and_files(phantom):
    data = read_json(phantom / "dataset.json")
    assert data["labels"] == {"0": "background", "1": "oedema", "2": "tumour_core", "3": "ventricles"} == BRAIN_LABELS
    names = [f"patient{n:03d}" for n in range(1, NUM_PATIENTS + 1)]
    expected = [{"image": f"{name}/{name}_{scan}.nii.gz", "label": f"{name}/{name}_{scan}_seg.nii.gz", "patient": name}
                for name in names for scan in SCANS]
    assert data["training"] == expected
    assert sorted(p.name for p in phantom.iterdir() if p.is_dir()) == names
    for name in names:
        assert {p.name for p in (phantom / name).iterdir()} == {
            Path(item[key]).name for item in expected if item["patient"] == name for key in ("image", "label")}
    manifest = read_json(phantom / MANIFEST)
    assert manifest["complete"] is True and sorted(manifest["info"]) == names
    assert manifest["parameters"] == {"num_patients": NUM_PATIENTS, "image_size": SIZE, "seed": 3, "slices": [10, 16]}


def test_reader_gives_two_volumes_per_patient(index):
    assert index.num_classes == 4 and index.ignore_index == 4
    assert index.labels == ("oedema", "tumour_core", "ventricles")
    by_patient = defaultdict(list)
    for volume in index.volumes:
        by_patient[volume["patient"]].append(volume)
    assert len(by_patient) == NUM_PATIENTS and len(index.volumes) == 2 * NUM_PATIENTS
    for patient, pair in by_patient.items():
        assert [v["id"] for v in pair] == [f"{patient}_{scan}" for scan in SCANS]
        depths = {v["num_slices"] for v in pair}
        assert len(depths) == 1 and 10 <= depths.pop() <= 16, patient
    assert len(index.slices) == sum(v["num_slices"] for v in index.volumes)


def test_volumes_are_int16_mr_with_uint8_labels_on_one_grid(volumes):
    for vid, (volume, nifti, image, label) in volumes.items():
        assert image.shape == label.shape == (SIZE, SIZE, volume["num_slices"]), vid
        assert image.dtype == np.int16 and label.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        # magnitude MR in arbitrary units (Rician background above zero), not HU and not [0, 1]
        assert image.min() >= 0 and np.percentile(image, 99) > 100 and np.median(image[..., 0][:4, :4]) < 100
        zooms = nifti.header.get_zooms()
        assert zooms[0] == zooms[1] and 3.5 < zooms[0] < 4.1 and 5.0 <= zooms[2] <= 7.5, (vid, zooms)
        assert np.all(np.diag(nifti.affine)[:3] > 0), "RAS axes"


def test_every_class_and_slices_without_lesion_or_ventricles(volumes):
    shares = np.zeros(4)
    for vid, (volume, _, _, label) in volumes.items():
        for cls in (1, 2, 3):
            assert np.any(label == cls), f"{vid}: class {cls} missing"
        lesion, ventricles = slices_with(label, 1, 2), slices_with(label, 3)
        assert not (lesion[0] and lesion[-1]), f"{vid}: the lesion reaches both ends of the stack"
        assert not ventricles[0] and not ventricles[-1] and ventricles.any(), f"{vid}: ventricles {ventricles}"
        shares += [slices_with(label, cls).sum() for cls in range(4)]
    shares /= sum(v[0]["num_slices"] for v in volumes.values())
    print("\nshare of slices with background, oedema, tumour core, ventricles:", np.round(shares, 3))
    assert 0.05 < shares[2] < shares[1] < 0.9 and 0.2 < shares[3] < 0.8


def test_follow_up_changes_lesion_and_pose(phantom, volumes):
    info = read_json(phantom / MANIFEST)["info"]
    for patient, entry in info.items():
        (_, base_nifti, base_image, base), (_, follow_nifti, follow_image, follow) = (
            volumes[f"{patient}_{scan}"] for scan in SCANS)
        np.testing.assert_array_equal(base_nifti.affine, follow_nifti.affine)
        assert not np.array_equal(base, follow) and not np.array_equal(base_image, follow_image)
        core = np.count_nonzero(follow == 2) / max(np.count_nonzero(base == 2), 1)
        if entry["core_change"] > 1.15:
            assert core > 1.0, (patient, entry, core)
        elif entry["core_change"] < 0.87:
            assert core < 1.0, (patient, entry, core)
        # the ventricles are the same anatomy, seen from a slightly moved head
        ventricles = np.count_nonzero(follow == 3) / np.count_nonzero(base == 3)
        assert 0.6 < ventricles < 1.6, (patient, ventricles)


def test_patients_differ_more_than_their_slices(volumes):
    """The premise of the encoder's patient and volume groups, measured as for the cardiac phantom."""
    stats = slice_deviation_statistics((record["patient"], image) for record, _, image, _ in volumes.values())
    print("\nmean pairwise |deviation| of normalised slices:", {k: round(v, 3) for k, v in stats.items()})
    assert stats["patient"] < stats["overall"] and stats["volume"] < stats["overall"]
    assert stats["adjacent"] < stats["volume"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = make_brain_phantom(tmp_path / "a", 2, image_size=32, seed=11)
    second = make_brain_phantom(tmp_path / "b", 2, image_size=32, seed=11)
    other = make_brain_phantom(tmp_path / "c", 2, image_size=32, seed=12)
    files = sorted(p.relative_to(first) for p in first.rglob("*.nii.gz"))
    assert len(files) == 8
    for rel in [*files, Path("dataset.json")]:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    assert any((first / rel).read_bytes() != (other / rel).read_bytes() for rel in files)


def test_slice_range_is_honoured(tmp_path):
    root = make_brain_phantom(tmp_path, 3, image_size=32, slices=(8, 9))
    assert {load(p).shape[2] for p in root.rglob("*_seg.nii.gz")} <= {8, 9}


def test_complete_phantom_with_same_parameters_is_reused(phantom):
    before = {p: p.stat().st_mtime_ns for p in phantom.rglob("*") if p.is_file()}
    assert make_brain_phantom(phantom, NUM_PATIENTS, image_size=SIZE, seed=3) == phantom
    assert {p: p.stat().st_mtime_ns for p in phantom.rglob("*") if p.is_file()} == before


def test_other_parameters_or_interrupted_run_regenerate(tmp_path):
    root = make_brain_phantom(tmp_path, 3, image_size=32)
    make_brain_phantom(root, 2, image_size=32)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["patient001", "patient002"]
    assert len(read_json(root / "dataset.json")["training"]) == 4
    assert read_json(root / MANIFEST)["parameters"]["num_patients"] == 2
    # A file lost since: the phantom is incomplete and is written again.
    (root / "patient002" / "patient002_followup_seg.nii.gz").unlink()
    make_brain_phantom(root, 2, image_size=32)
    assert (root / "patient002" / "patient002_followup_seg.nii.gz").is_file()
    # An interrupted run leaves complete = false: the next call must redo it.
    atomic_write_json(root / MANIFEST, {**read_json(root / MANIFEST), "complete": False})
    (root / "patient001" / "left_over.txt").write_text("from the interrupted run")
    make_brain_phantom(root, 2, image_size=32)
    assert not (root / "patient001" / "left_over.txt").exists()
    assert len(list(root.glob("patient001/*.nii.gz"))) == 4 and read_json(root / MANIFEST)["complete"] is True


def test_refuses_a_foreign_folder_unless_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        make_brain_phantom(tmp_path, 1, image_size=32)
    assert not (tmp_path / "patient001").exists()
    make_brain_phantom(tmp_path, 1, image_size=32, overwrite=True)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert len(list(tmp_path.glob("patient001/*.nii.gz"))) == 4


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_patients": 0}, "num_patients"), ({"image_size": 16}, "image_size"), ({"seed": -1}, "seed"),
     ({"slices": (4, 12)}, "slices"), ({"slices": (12, 10)}, "slices"), ({"slices": 12}, "slices")],
)
def test_bad_parameters_raise_config_error(tmp_path, kwargs, name):
    with pytest.raises(ConfigError, match=name):
        make_brain_phantom(tmp_path / "out", **{"num_patients": 1, "image_size": 32, **kwargs})


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        make_brain_phantom(tmp_path / "file", 1, image_size=32)


def test_bundle_data_config_builds_and_splits_by_patient(tmp_path):
    """configs/data/brain_phantom.json through the bundle's loader (a misspelt key would raise)."""
    from monai.bundle import ConfigParser

    from alseg_monai.loop import load_experiment
    from alseg_monai.loop.config import BUNDLE_DIR, check_keys, load_config

    configs = BUNDLE_DIR / "configs"
    check_keys(ConfigParser.load_config_file(str(configs / "active_learning.json")),
               list(ConfigParser.load_config_file(str(configs / DATA_CONFIG))), DATA_CONFIG)
    defaults = load_config([DATA_CONFIG])
    assert defaults["phantom"]["num_patients"] == 24 and defaults["num_classes"] == 4
    assert defaults.get_parsed_content("ignore_index") == 4
    assert defaults["phantom"]["root"].endswith("/data/brain_phantom'")
    assert "make_brain_phantom" in defaults["dataset_dir"] and defaults["intensity"]["mode"] == "percentile"
    overrides = {"phantom#root": str(tmp_path / "brain"), "phantom#num_patients": 5, "phantom#image_size": 32,
                 "image_size": 32, "output_dir": str(tmp_path / "run"), "progress": False}
    experiment = load_experiment([DATA_CONFIG], overrides)
    data = experiment.data
    data.read()
    assert data.index.kind == "datalist" and data.index.num_classes == 4 and data.index.ignore_index == 4
    assert len(data.index.volumes) == 10 and len(data.index.subsets) == 5
    for name, subset in data.splits.items():
        patients = defaultdict(set)
        for volume in subset.volumes:
            patients[volume["patient"]].add(volume["id"])
        assert all(len(ids) == 2 for ids in patients.values()), (name, patients)
    assert [len({v["patient"] for v in data.splits[k].volumes}) for k in ("train", "val", "test")] == [3, 1, 1]
    assert json.loads((tmp_path / "brain" / "dataset.json").read_text(encoding="utf-8"))["name"] == "brain_phantom"
