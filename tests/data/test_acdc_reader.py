from __future__ import annotations

import gzip

import numpy as np
import pytest
from layouts import acdc_volume, write_acdc_patient, write_nifti

from alseg_monai import AlsegError, ConfigError, DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset


def test_acdc_reader_records(acdc_root):
    index = read_dataset("acdc", acdc_root)
    assert len(index.volumes) == 8 and len(index.slices) == 40
    assert {v["phase"] for v in index.volumes} == {"ED", "ES"}
    first = index.slices[0]
    assert first["id"] == "patient001_frame01_slice_0"
    assert (first["patient"], first["volume"], first["slice"]) == ("patient001", "patient001_frame01", 0)
    assert first["label"].endswith("patient001_frame01_gt.nii.gz")
    assert first["scribble"].endswith("patient001_frame01_scribble.nii.gz")
    assert [s["slice"] for s in index.slices if s["volume"] == "patient002_frame12"] == list(range(5))
    assert index.num_classes == 4 and index.ignore_index == 4
    assert "patients: 4" in index.summary()


def test_acdc_training_testing_subsets_and_layout_split(tmp_path):
    for n in (1, 2, 3, 4):
        write_acdc_patient(tmp_path / "training", n)
    for n in (101, 102):
        write_acdc_patient(tmp_path / "testing", n)
    index = read_dataset("acdc", tmp_path)
    assert index.subsets["patient101"] == "testing" and index.subsets["patient001"] == "training"
    splits = split_dataset(index, method="layout", fractions=(0.75, 0.25), seed=0)
    assert set(splits["test"].patients) == {"patient101", "patient102"}
    assert len(splits["train"].patients) == 3 and len(splits["val"].patients) == 1


def test_separate_scribble_root(tmp_path):
    root, scribbles = tmp_path / "ACDC", tmp_path / "scribbles"
    write_acdc_patient(root, 1, scribbles=False)
    _, _, scribble = acdc_volume()
    write_nifti(scribbles / "patient001_frame01_scribble.nii.gz", scribble)
    index = read_dataset("acdc", root, scribble_root=scribbles)
    by_volume = {v["id"]: v for v in index.volumes}
    assert by_volume["patient001_frame01"]["scribble"].startswith(str(scribbles))
    assert by_volume["patient001_frame12"]["scribble"] is None


def test_cache_slices_and_volumes(acdc_root):
    index = read_dataset("acdc", acdc_root)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    item = SliceDataset(index.slices, cache)[3]
    assert item["image"].shape == (1, 16, 16) and item["label"].shape == (1, 16, 16)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert set(np.unique(item["scribble"].numpy())) <= {0, 1, 2, 3, 4}
    volume = VolumeDataset(index.volumes, cache)[0]
    assert volume["image"].shape == (1, 16, 16, 5)
    assert volume["label_original"].shape == (24, 20, 5) and volume["spatial_shape"] == (24, 20)
    assert cache.images(index.slices[:4]).shape == (4, 1, 16, 16)


def test_persistent_cache_reused(acdc_root, tmp_path, monkeypatch):
    index = read_dataset("acdc", acdc_root)
    first = SliceCache.from_index(index, image_size=16, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 8
    import alseg_monai.data.cache as cache_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("the persistent cache should have been used")

    monkeypatch.setattr(cache_module, "volume_preprocessing", no_decoding)
    second = SliceCache.from_index(index, image_size=16, cache_dir=tmp_path / "cache", progress=False)
    record = index.slices[7]
    np.testing.assert_array_equal(first.slice(record)["image"], second.slice(record)["image"])


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("acdc", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("acdc", tmp_path / "empty")


def test_unknown_kind_lists_known():
    with pytest.raises(ConfigError, match="acdc"):
        read_dataset("kvasir", ".")


def test_unknown_option_named(acdc_root):
    with pytest.raises(ConfigError, match="scribble_rot"):
        read_dataset("acdc", acdc_root, scribble_rot="x")


def test_info_cfg_missing_es(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    (folder / "Info.cfg").write_text("ED: 1\nGroup: NOR\n")
    with pytest.raises(DataError, match=r"Info\.cfg.*ES"):
        read_dataset("acdc", tmp_path)


def test_info_cfg_missing(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    (folder / "Info.cfg").unlink()
    with pytest.raises(DataError, match="Info.cfg not found"):
        read_dataset("acdc", tmp_path)


def test_corrupt_gt_named(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    (folder / "patient001_frame01_gt.nii.gz").write_bytes(b"this is not a nifti file")
    with pytest.raises(DataError, match="patient001_frame01_gt.nii.gz"):
        read_dataset("acdc", tmp_path)


def test_truncated_gzip_named_when_loading(tmp_path):
    folder = write_acdc_patient(tmp_path, 1, shape=(64, 64, 6))
    path = folder / "patient001_frame12_gt.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        index = read_dataset("acdc", tmp_path)  # the header may still be readable
    except DataError as err:
        assert "patient001_frame12_gt.nii.gz" in str(err)
        return
    with pytest.raises(DataError, match="patient001_frame12_gt.nii.gz"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_not_gzip_named(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    path = folder / "patient001_frame01.nii.gz"
    path.write_bytes(gzip.compress(b"\x00" * 20))
    with pytest.raises(AlsegError, match="patient001_frame01.nii.gz"):
        read_dataset("acdc", tmp_path)


def test_shape_mismatch_named(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    write_nifti(folder / "patient001_frame01_gt.nii.gz", np.zeros((24, 20, 4), np.uint8))
    with pytest.raises(DataError, match=r"patient001_frame01_gt.nii.gz.*\(24, 20, 4\)"):
        read_dataset("acdc", tmp_path)


def test_label_values_outside_classes(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    _, label, _ = acdc_volume()
    label[0, 0, 0] = 7
    write_nifti(folder / "patient001_frame12_gt.nii.gz", label)
    index = read_dataset("acdc", tmp_path)
    with pytest.raises(DataError, match=r"patient001_frame12_gt.nii.gz.*\[7\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_nan_voxels_named(tmp_path):
    folder = write_acdc_patient(tmp_path, 1)
    image, _, _ = acdc_volume()
    image[1, 2, 3] = np.nan
    write_nifti(folder / "patient001_frame01.nii.gz", image)
    index = read_dataset("acdc", tmp_path)
    with pytest.raises(DataError, match=r"patient001_frame01.nii.gz: 1 NaN or Inf"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_layout_split_honours_validation_subset(tmp_path):
    for folder, numbers in (("training", (1, 2, 3)), ("validation", (4,)), ("testing", (5,))):
        for n in numbers:
            write_acdc_patient(tmp_path / folder, n)
    splits = split_dataset(read_dataset("acdc", tmp_path), method="layout")
    assert splits["val"].patients == ["patient004"] and splits["test"].patients == ["patient005"]
    assert splits["train"].patients == ["patient001", "patient002", "patient003"]


def test_split_lists_ranges_and_disjointness(acdc_root):
    index = read_dataset("acdc", acdc_root)
    splits = split_dataset(index, method="lists", lists={"train": ["1-2"], "val": ["patient003_frame01"], "test": ["4-4"]})
    assert splits["train"].patients == ["patient001", "patient002"]
    assert splits["val"].patients == ["patient003"] and splits["test"].patients == ["patient004"]
    with pytest.raises(ConfigError, match="patient002"):
        split_dataset(index, method="lists", lists={"train": ["1-2"], "test": ["2-4"]})
    with pytest.raises(ConfigError, match="patient999"):
        split_dataset(index, method="lists", lists={"train": ["patient999"], "test": ["4-4"]})


def test_random_split_reproducible_and_disjoint(acdc_root):
    index = read_dataset("acdc", acdc_root)
    a = split_dataset(index, fractions=(0.5, 0.25, 0.25), seed=3)
    b = split_dataset(index, fractions=(0.5, 0.25, 0.25), seed=3)
    assert {k: v.patients for k, v in a.items()} == {k: v.patients for k, v in b.items()}
    members = [p for part in a.values() for p in part.patients]
    assert sorted(members) == sorted(index.patients) and len(set(members)) == len(members)


def test_cache_holds_no_randomizable(acdc_root, tmp_path):
    """MONAI's set_rnd walks dataset attributes: a cache loaded from disk and one built
    from files must look the same to it, or augmentation seeds would differ on resume."""
    from monai.data import set_rnd

    index = read_dataset("acdc", acdc_root)
    fresh = SliceCache.from_index(index, image_size=16, cache_dir=tmp_path / "c", progress=False)
    stored = SliceCache.from_index(index, image_size=16, cache_dir=tmp_path / "c", progress=False)
    assert set_rnd(fresh, 0) == set_rnd(stored, 0) == 0
