from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from alseg_monai import ConfigError, DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset

SHAPE = (22, 18, 4)


def write_nifti(path: Path, array: np.ndarray) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path


def lge_volume(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, label 0-3, scribble 0-4) of a toy LGE short-axis stack."""
    rng = np.random.default_rng(seed)
    h, w, d = shape
    label = np.zeros(shape, np.uint8)
    label[5:17, 4:14] = 2
    label[8:14, 7:11] = 3
    label[:4, :5] = 1
    image = (label * 50 + rng.normal(300, 20, shape)).astype(np.float32)
    scribble = np.full(shape, 4, np.uint8)
    scribble[11, :, :] = label[11, :, :]
    return image, label, scribble


def raw_values(label: np.ndarray) -> np.ndarray:
    """Classes -> the raw MSCMRseg values (200 Myo, 500 LV, 600 RV)."""
    return np.choose(label, [0, 600, 200, 500]).astype(np.int16)


@pytest.fixture
def mscmr_root(tmp_path: Path) -> Path:
    """The CycleMix layout: scribbles for train subjects (one under MSCMR_scribbles),
    manual labels for val (0-3) and TestSet (raw 200/500/600), an unlabelled image."""
    root = tmp_path / "CycleMix"
    data = root / "MSCMR_dataset"
    for n in (2, 4, 5):
        image, _, scribble = lge_volume(n)
        write_nifti(data / "train" / "images" / f"subject{n}_DE.nii.gz", image)
        if n == 2:
            write_nifti(data / "train" / "labels" / f"subject{n}_DE_scribble.nii.gz", scribble)
        if n == 4:
            write_nifti(root / "MSCMR_scribbles" / f"subject{n}_DE_scribble.nii.gz", scribble)
    image, label, _ = lge_volume(1)
    write_nifti(data / "val" / "images" / "subject1_DE.nii.gz", image)
    write_nifti(data / "val" / "labels" / "subject1_DE_manual.nii.gz", label)
    image, label, _ = lge_volume(10)
    write_nifti(data / "TestSet" / "images" / "subject10_DE.nii.gz", image)
    write_nifti(data / "TestSet" / "labels" / "subject10_DE_manual.nii.gz", raw_values(label))
    return root


def test_records_and_subsets(mscmr_root):
    index = read_dataset("mscmr", mscmr_root)
    assert [v["id"] for v in index.volumes] == [f"subject{n}_DE" for n in (1, 2, 4, 5, 10)]
    assert index.patients == ["subject1", "subject2", "subject4", "subject5", "subject10"]
    assert index.subsets == {
        "subject1": "validation", "subject2": "training", "subject4": "training",
        "subject5": "training", "subject10": "testing",
    }
    by_id = {v["id"]: v for v in index.volumes}
    assert by_id["subject1_DE"]["label"].endswith("val/labels/subject1_DE_manual.nii.gz")
    assert by_id["subject1_DE"]["scribble"] is None
    assert by_id["subject2_DE"]["scribble"].endswith("train/labels/subject2_DE_scribble.nii.gz")
    assert by_id["subject4_DE"]["scribble"].endswith("MSCMR_scribbles/subject4_DE_scribble.nii.gz")
    assert by_id["subject5_DE"]["label"] is None and by_id["subject5_DE"]["scribble"] is None
    assert by_id["subject10_DE"]["label_map"] == {200: 2, 500: 3, 600: 1}
    assert by_id["subject10_DE"]["num_slices"] == 4 and by_id["subject10_DE"]["spatial_shape"] == [22, 18]
    assert len(index.slices) == 20
    assert [(s["id"], s["slice"]) for s in index.slices[4:6]] == [(f"subject2_DE_slice_{z}", z) for z in (0, 1)]
    assert index.num_classes == 4 and index.ignore_index == 4


def test_cache_maps_raw_labels_and_zscores(mscmr_root):
    index = read_dataset("mscmr", mscmr_root)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    volumes = VolumeDataset(index.volumes, cache)
    test_volume = volumes[4]
    assert test_volume["id"] == "subject10_DE"
    np.testing.assert_array_equal(test_volume["label_original"].numpy(), lge_volume(10)[1])
    assert test_volume["image"].shape == (1, 16, 16, 4)
    assert float(test_volume["image"].mean()) == pytest.approx(0.0, abs=0.1)  # z-score per volume
    item = SliceDataset(index.slices, cache)[5]  # subject2, scribble only
    assert item["image"].shape == (1, 16, 16) and "label" not in item
    assert set(np.unique(item["scribble"].numpy())) == {0, 2, 3, 4}
    splits = split_dataset(index, method="layout", fractions=(0.75, 0.25), seed=0)
    assert splits["test"].patients == ["subject10"]


def test_challenge_naming_and_other_sequences(tmp_path, caplog):
    image, label, _ = lge_volume(3)
    write_nifti(tmp_path / "lge" / "patient1_LGE.nii.gz", image)
    write_nifti(tmp_path / "lgegt" / "patient1_LGE_manual.nii.gz", raw_values(label))
    write_nifti(tmp_path / "c0" / "patient1_C0.nii.gz", image)
    write_nifti(tmp_path / "c0gt" / "patient1_C0_manual.nii.gz", raw_values(label))
    write_nifti(tmp_path / "notes" / "atlas.nii.gz", image)
    with caplog.at_level(logging.INFO, logger="alseg_monai.data.readers.mscmr"):
        index = read_dataset("mscmr", tmp_path)
    assert [v["id"] for v in index.volumes] == ["patient1_LGE"] and index.patients == ["patient1"]
    assert index.volumes[0]["label"].endswith("patient1_LGE_manual.nii.gz")
    assert "sequences other than" in caplog.text and "atlas.nii.gz" in caplog.text


def test_scribble_root(tmp_path):
    image, _, scribble = lge_volume(6)
    write_nifti(tmp_path / "data" / "subject6_DE.nii.gz", image)
    write_nifti(tmp_path / "scribbles" / "subject6_DE_scribble.nii.gz", scribble)
    index = read_dataset("mscmr", tmp_path / "data", scribble_root=tmp_path / "scribbles")
    assert index.volumes[0]["scribble"].startswith(str(tmp_path / "scribbles"))


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("mscmr", tmp_path / "nope")
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("mscmr", tmp_path)


def test_label_without_image(mscmr_root):
    _, label, _ = lge_volume(0)
    write_nifti(mscmr_root / "MSCMR_dataset" / "val" / "labels" / "subject33_DE_manual.nii.gz", label)
    with pytest.raises(DataError, match=r"subject33_DE_manual.nii.gz: a label without an image"):
        read_dataset("mscmr", mscmr_root)


def test_two_labels_for_one_subject(mscmr_root):
    _, label, _ = lge_volume(1)
    write_nifti(mscmr_root / "extra" / "subject1_DE_gt.nii.gz", label)
    with pytest.raises(DataError, match=r"subject1_DE_(gt|manual).nii.gz: a second label for subject1"):
        read_dataset("mscmr", mscmr_root)


def test_corrupt_image_named(mscmr_root):
    (mscmr_root / "MSCMR_dataset" / "train" / "images" / "subject5_DE.nii.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="subject5_DE.nii.gz"):
        read_dataset("mscmr", mscmr_root)


def test_shape_mismatch_named(mscmr_root):
    labels = mscmr_root / "MSCMR_dataset" / "val" / "labels"
    write_nifti(labels / "subject1_DE_manual.nii.gz", np.zeros((22, 18, 3), np.uint8))
    with pytest.raises(DataError, match=r"subject1_DE_manual.nii.gz: shape \(22, 18, 3\)"):
        read_dataset("mscmr", mscmr_root)


def test_label_values_outside_classes(mscmr_root):
    _, label, _ = lge_volume(1)
    label[0, 0, 2] = 7
    write_nifti(mscmr_root / "MSCMR_dataset" / "val" / "labels" / "subject1_DE_manual.nii.gz", label)
    index = read_dataset("mscmr", mscmr_root).subset(["subject1"])
    with pytest.raises(DataError, match=r"subject1_DE_manual.nii.gz: label values \[7\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_disabled_label_map_leaves_raw_values(mscmr_root):
    index = read_dataset("mscmr", mscmr_root, label_map={}).subset(["subject10"])
    with pytest.raises(DataError, match=r"subject10_DE_manual.nii.gz: label values \[200, 500, 600\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_label_map_target_outside_classes(mscmr_root):
    with pytest.raises(ConfigError, match=r"label_map targets \{600: 5\}"):
        read_dataset("mscmr", mscmr_root, label_map={"600": 5})
