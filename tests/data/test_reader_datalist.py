from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alseg_monai import ConfigError, DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset

SHAPE = (20, 16, 5)


def write_nifti(path: Path, array: np.ndarray) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path


def write_itk(path: Path, array: np.ndarray) -> Path:
    """NRRD / MHA with SimpleITK, storing ``array`` (x, y, z) as the toolkit reads it back."""
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0))), str(path))
    return path


def organ(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, label 0-2, scribble 0-3) with two nested boxes."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[4:16, 3:13] = 1
    label[8:12, 6:10] = 2
    image = (label * 40 + rng.normal(50, 5, shape)).astype(np.float32)
    scribble = np.full(shape, 3, np.uint8)
    scribble[10, :, :] = label[10, :, :]
    return image, label, scribble


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def datalist(tmp_path: Path) -> Path:
    """A decathlon-style dataset.json: two training patients (one with two volumes, one
    NRRD), a validation item, and test items given as a path and as a dict (MHA)."""
    root = tmp_path / "Task01"
    for name, seed in (("case_10", 10), ("case_2a", 2), ("case_3", 3)):
        image, label, scribble = organ(seed)
        write_nifti(root / "imagesTr" / f"{name}.nii.gz", image)
        write_nifti(root / "labelsTr" / f"{name}.nii.gz", label)
        write_nifti(root / "scribblesTr" / f"{name}.nii.gz", scribble)
    image, label, _ = organ(4)
    write_itk(root / "imagesTr" / "case_2b.nrrd", image)
    write_itk(root / "labelsTr" / "case_2b.nrrd", label)
    write_nifti(root / "imagesTs" / "case_7.nii", organ(7)[0])
    write_itk(root / "imagesTs" / "case_8.mha", organ(8)[0][..., :3])
    return write_json(root / "dataset.json", {
        "name": "toy",
        "labels": {"0": "background", "1": "organ", "2": "core"},
        "training": [
            {"image": "imagesTr/case_10.nii.gz", "label": "labelsTr/case_10.nii.gz",
             "scribble": "scribblesTr/case_10.nii.gz"},
            {"image": "imagesTr/case_2a.nii.gz", "label": "labelsTr/case_2a.nii.gz", "patient": "p2"},
            {"image": "./imagesTr/case_2b.nrrd", "label": "./labelsTr/case_2b.nrrd", "patient": "p2"},
        ],
        "validation": [{"image": "imagesTr/case_3.nii.gz", "label": "labelsTr/case_3.nii.gz"}],
        "test": ["imagesTs/case_7.nii", {"image": "imagesTs/case_8.mha"}],
    })


def test_records_patients_and_subsets(datalist):
    index = read_dataset("datalist", datalist)
    assert [v["id"] for v in index.volumes] == ["case_2a", "case_2b", "case_3", "case_7", "case_8", "case_10"]
    assert index.patients == ["p2", "case_3", "case_7", "case_8", "case_10"]
    assert index.subsets == {"case_10": "training", "p2": "training", "case_3": "validation",
                             "case_7": "test", "case_8": "test"}
    by_id = {v["id"]: v for v in index.volumes}
    assert by_id["case_10"]["scribble"] == str(datalist.parent / "scribblesTr" / "case_10.nii.gz")
    assert by_id["case_2b"]["format"] == "nifti" and by_id["case_2b"]["label"].endswith("labelsTr/case_2b.nrrd")
    assert by_id["case_7"]["label"] is None and by_id["case_8"]["num_slices"] == 3
    assert by_id["case_10"]["spatial_shape"] == [20, 16]
    assert [s["slice"] for s in index.slices if s["volume"] == "case_2b"] == list(range(5))
    assert len(index.slices) == 5 * 5 + 3
    assert index.num_classes == 3 and index.ignore_index == 3 and index.channels == 1
    assert read_dataset("datalist", datalist.parent).root == str(datalist)  # the folder finds dataset.json


def test_cache_items_and_itk_orientation(datalist):
    index = read_dataset("datalist", datalist)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    volumes = VolumeDataset(index.volumes, cache)
    nrrd = volumes[1]
    assert nrrd["id"] == "case_2b" and nrrd["image"].shape == (1, 16, 16, 5)
    np.testing.assert_array_equal(nrrd["label_original"].numpy(), organ(4)[1])
    assert volumes[4]["image"].shape == (1, 16, 16, 3) and "label" not in volumes[4]
    item = SliceDataset(index.slices, cache)[[s["id"] for s in index.slices].index("case_10_slice_2")]
    assert item["image"].shape == (1, 16, 16) and set(np.unique(item["label"].numpy())) == {0, 1, 2}
    assert set(np.unique(item["scribble"].numpy())) == {0, 1, 2, 3}
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0


def test_layout_split_keeps_test_and_validation_lists(datalist):
    index = read_dataset("datalist", datalist)
    val = [p for p, s in index.subsets.items() if s == "validation"]
    splits = split_dataset(index, method="layout", lists={"val": val})
    assert splits["test"].patients == ["case_7", "case_8"]
    assert splits["val"].patients == ["case_3"] and splits["train"].patients == ["p2", "case_10"]


def test_base_dir_and_num_classes_without_labels(tmp_path, datalist):
    elsewhere = write_json(tmp_path / "lists" / "mine.json", {"training": [{"image": "imagesTr/case_3.nii.gz"}]})
    with pytest.raises(ConfigError, match="num_classes is not set"):
        read_dataset("datalist", elsewhere, base_dir=datalist.parent)
    index = read_dataset("datalist", elsewhere, base_dir=datalist.parent, num_classes=3, ignore_index=255)
    assert index.volumes[0]["image"] == str(datalist.parent / "imagesTr" / "case_3.nii.gz")
    assert index.ignore_index == 255
    with pytest.raises(DataError, match=r"lists/imagesTr/case_3.nii.gz: file not found"):
        read_dataset("datalist", elsewhere, num_classes=3)


def test_class_settings_checked(datalist):
    with pytest.raises(ConfigError, match=r"num_classes=4, but 'labels' in .*dataset.json names 3"):
        read_dataset("datalist", datalist, num_classes=4)
    with pytest.raises(ConfigError, match=r"ignore_index=2 is a class"):
        read_dataset("datalist", datalist, ignore_index=2)
    with pytest.raises(ConfigError, match=r"channels=3"):
        read_dataset("datalist", datalist, channels=3)


def test_missing_json_and_folder_without_one(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("datalist", tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"no dataset.json or datalist.json"):
        read_dataset("datalist", tmp_path)


def test_malformed_json(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text("{\"training\": [")
    with pytest.raises(DataError, match=r"dataset.json: cannot read the datalist JSON"):
        read_dataset("datalist", path)
    write_json(path, {"numTraining": 3})
    with pytest.raises(DataError, match=r"dataset.json: expected a JSON object with lists"):
        read_dataset("datalist", path)
    write_json(path, {"training": {"image": "a.nii.gz"}})
    with pytest.raises(DataError, match=r"'training' is a dict"):
        read_dataset("datalist", path)


def test_empty_lists(tmp_path):
    path = write_json(tmp_path / "dataset.json", {"training": [], "labels": {"0": "bg", "1": "fg"}})
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("datalist", path)


def test_bad_items(datalist):
    data = json.loads(datalist.read_text(encoding="utf-8"))
    data["validation"].append({"label": "labelsTr/case_3.nii.gz"})
    write_json(datalist, data)
    with pytest.raises(DataError, match=r"dataset.json: validation\[1\] has no 'image'"):
        read_dataset("datalist", datalist)
    data["validation"][1] = {"image": ["imagesTr/case_3.nii.gz", "imagesTr/case_10.nii.gz"]}
    write_json(datalist, data)
    with pytest.raises(DataError, match=r"validation\[1\] has image \[.*expected one file path"):
        read_dataset("datalist", datalist)
    data["validation"][1] = 42
    write_json(datalist, data)
    with pytest.raises(DataError, match=r"validation\[1\] is 42"):
        read_dataset("datalist", datalist)


def test_duplicate_volume_id(datalist):
    data = json.loads(datalist.read_text(encoding="utf-8"))
    data["test"].append({"image": "imagesTs/../imagesTr/case_3.nii.gz"})
    write_json(datalist, data)
    with pytest.raises(DataError, match=r"test\[2\] and validation\[0\] both have an image named case_3"):
        read_dataset("datalist", datalist)


def test_patient_in_two_lists(datalist):
    data = json.loads(datalist.read_text(encoding="utf-8"))
    data["test"][1] = {"image": "imagesTs/case_8.mha", "patient": "p2"}
    write_json(datalist, data)
    with pytest.raises(DataError, match=r"patient p2 \(test\[1\]\) is also in 'training'"):
        read_dataset("datalist", datalist)


def test_missing_corrupt_and_mismatched_files(datalist):
    root = datalist.parent
    (root / "imagesTs" / "case_7.nii").unlink()
    with pytest.raises(DataError, match=r"imagesTs/case_7.nii: file not found"):
        read_dataset("datalist", datalist)
    (root / "imagesTs" / "case_7.nii").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"imagesTs/case_7.nii: cannot read the image header"):
        read_dataset("datalist", datalist)
    write_nifti(root / "imagesTs" / "case_7.nii", organ(7)[0])
    write_nifti(root / "labelsTr" / "case_3.nii.gz", np.zeros((20, 16, 4), np.uint8))
    with pytest.raises(DataError, match=r"labelsTr/case_3.nii.gz: shape \(20, 16, 4\)"):
        read_dataset("datalist", datalist)


def test_label_values_outside_classes(datalist):
    label = organ(3)[1]
    label[1, 1, 1] = 5
    write_nifti(datalist.parent / "labelsTr" / "case_3.nii.gz", label)
    index = read_dataset("datalist", datalist).subset(["case_3"])
    with pytest.raises(DataError, match=r"labelsTr/case_3.nii.gz: label values \[5\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_phantom_listed_in_a_datalist_matches_the_acdc_reader(tmp_path):
    """A datalist naming the phantom's ACDC files indexes and loads them as the ACDC reader does."""
    from alseg_monai.data import make_phantom

    acdc = read_dataset("acdc", make_phantom(tmp_path / "phantom", 2, image_size=32, progress=False))
    items = [{k: v[k] for k in ("image", "label", "scribble", "patient")} for v in acdc.volumes]
    path = write_json(tmp_path / "lists" / "datalist.json", {"training": items[:2], "test": items[2:]})
    index = read_dataset("datalist", path, num_classes=4)
    assert index.ignore_index == 4 and index.patients == acdc.patients
    assert [s["id"] for s in index.slices] == [s["id"] for s in acdc.slices]
    assert index.subsets == {"patient001": "training", "patient002": "test"}
    a_cache = SliceCache.from_index(acdc, image_size=16, progress=False)
    d_cache = SliceCache.from_index(index, image_size=16, progress=False)
    np.testing.assert_array_equal(d_cache.images(index.slices), a_cache.images(acdc.slices))
    for vid in (v["id"] for v in acdc.volumes):
        np.testing.assert_array_equal(d_cache.volume(vid)["scribble"], a_cache.volume(vid)["scribble"])
