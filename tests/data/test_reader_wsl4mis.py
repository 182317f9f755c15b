from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from alseg_monai import DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset

SHAPE = (24, 20)
DEPTH = 12  # slices 10 and 11 need two digits


def write_h5(path: Path, **datasets: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        for key, array in datasets.items():
            handle.create_dataset(key, data=array)
    return path


def frame_arrays(seed: int, depth: int = DEPTH) -> dict[str, np.ndarray]:
    """(D, H, W) image in [0, 1] whose slice z has mean ~ z / 20, label 0-3, scribble 0-4."""
    rng = np.random.default_rng(seed)
    image = np.stack([np.full(SHAPE, z / 20.0) for z in range(depth)]).astype(np.float32)
    image += rng.uniform(0, 0.01, image.shape).astype(np.float32)
    label = np.zeros((depth, *SHAPE), np.uint8)
    label[:, 6:18, 5:15] = 3
    label[:, 8:16, 7:13] = 2
    label[:, :4, :4] = 1
    scribble = np.full_like(label, 4)
    scribble[:, 12, :] = label[:, 12, :]
    return {"image": image, "label": label, "scribble": scribble}


def write_sliced(root: Path, volume: str, arrays: dict[str, np.ndarray], keys=("image", "label", "scribble")) -> None:
    for z in range(arrays["image"].shape[0]):
        write_h5(root / "ACDC_training_slices" / f"{volume}_slice_{z}.h5", **{k: arrays[k][z] for k in keys})


def write_volume(root: Path, volume: str, arrays: dict[str, np.ndarray], keys=("image", "label")) -> Path:
    return write_h5(root / "ACDC_training_volumes" / f"{volume}.h5", **{k: arrays[k] for k in keys})


@pytest.fixture
def wsl4mis_root(tmp_path: Path) -> Path:
    """Two training patients (two frames, slices and volume files) and one test frame
    stored as a volume file only, as WSL4MIS ships ACDC."""
    root = tmp_path / "ACDC"
    for n, patient in enumerate(("patient001", "patient002")):
        for i, frame in enumerate(("frame01", "frame12")):
            arrays = frame_arrays(10 * n + i)
            write_sliced(root, f"{patient}_{frame}", arrays)
            write_volume(root, f"{patient}_{frame}", arrays)
    write_volume(root, "patient101_frame01", frame_arrays(99, depth=7))
    return root


def test_records_ids_and_sources(wsl4mis_root):
    index = read_dataset("wsl4mis_h5", wsl4mis_root)
    assert [v["id"] for v in index.volumes] == [
        "patient001_frame01", "patient001_frame12", "patient002_frame01", "patient002_frame12", "patient101_frame01",
    ]
    assert index.patients == ["patient001", "patient002", "patient101"]
    assert len(index.slices) == 4 * DEPTH + 7
    sliced = index.volumes[0]
    assert sliced["format"] == "h5_slices" and sliced["num_slices"] == DEPTH
    assert sliced["spatial_shape"] == list(SHAPE)
    assert sliced["volume_file"].endswith("ACDC_training_volumes/patient001_frame01.h5")
    assert [Path(p).name for p in sliced["image"][:3]] == [f"patient001_frame01_slice_{z}.h5" for z in range(3)]
    assert sliced["scribble"] == sliced["image"] == sliced["label"]
    stored = index.volumes[-1]
    assert stored["format"] == "h5_volume" and stored["num_slices"] == 7 and stored["scribble"] is None
    assert "volume_file" not in stored
    of_volume = [s for s in index.slices if s["volume"] == "patient002_frame12"]
    assert [s["slice"] for s in of_volume] == list(range(DEPTH))
    assert {s["patient"] for s in of_volume} == {"patient002"}
    assert index.num_classes == 4 and index.ignore_index == 4 and index.channels == 1
    assert index.subsets == {}


def test_two_digit_slice_number_parses_as_itself(wsl4mis_root):
    index = read_dataset("wsl4mis_h5", wsl4mis_root)
    by_id = {s["id"]: s for s in index.slices}
    ten, one = by_id["patient001_frame01_slice_10"], by_id["patient001_frame01_slice_1"]
    assert ten["slice"] == 10 and one["slice"] == 1
    assert Path(ten["image"]).name == "patient001_frame01_slice_10.h5"
    assert Path(one["image"]).name == "patient001_frame01_slice_1.h5"
    cache = SliceCache.from_index(index.subset(["patient001"]), image_size=16, progress=False)
    # the cached slice 10 holds the data of slice_10.h5 (mean ~ 10 / 20), not slice_1's
    assert cache.slice(ten)["image"].mean() == pytest.approx(0.5, abs=0.02)
    assert cache.slice(one)["image"].mean() == pytest.approx(0.05, abs=0.02)


def test_cache_slice_and_volume_items(wsl4mis_root):
    index = read_dataset("wsl4mis_h5", wsl4mis_root)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    item = SliceDataset(index.slices, cache)[5]
    assert item["id"] == "patient001_frame01_slice_5"
    assert item["image"].shape == (1, 16, 16) and item["label"].shape == (1, 16, 16)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert set(np.unique(item["label"].numpy())) <= {0, 1, 2, 3}
    assert set(np.unique(item["scribble"].numpy())) == {0, 2, 3, 4}
    volumes = VolumeDataset(index.volumes, cache)
    sliced, stored = volumes[0], volumes[4]
    assert sliced["image"].shape == (1, 16, 16, DEPTH) and sliced["label_original"].shape == (*SHAPE, DEPTH)
    assert sliced["spatial_shape"] == SHAPE and "scribble" in sliced
    assert stored["image"].shape == (1, 16, 16, 7) and "scribble" not in stored
    np.testing.assert_array_equal(stored["label_original"].numpy()[..., 0], frame_arrays(99, 7)["label"][0])


def test_slices_only_and_volumes_only(tmp_path):
    write_sliced(tmp_path / "a", "patient003_frame01", frame_arrays(3), keys=("image", "scribble"))
    index = read_dataset("wsl4mis_h5", tmp_path / "a")
    assert index.volumes[0]["label"] is None and index.volumes[0]["scribble"] is not None
    assert index.slices[0]["label"] is None and index.slices[0]["scribble"].endswith("_slice_0.h5")
    assert "volume_file" not in index.volumes[0]
    write_volume(tmp_path / "b", "patient004_frame02", frame_arrays(4))
    index = read_dataset("wsl4mis_h5", tmp_path / "b")
    assert [v["format"] for v in index.volumes] == ["h5_volume"] and len(index.slices) == DEPTH


def test_split_lists_of_wsl4mis(wsl4mis_root):
    (wsl4mis_root / "train_slices.list").write_text("patient001_frame01_slice_0\npatient001_frame12_slice_11\n")
    (wsl4mis_root / "val.list").write_text("patient002_frame01\npatient002_frame12\n")
    (wsl4mis_root / "test.list").write_text("patient101_frame01\n")
    index = read_dataset("wsl4mis_h5", wsl4mis_root)
    lists = {"train": "train_slices.list", "val": "val.list", "test": "test.list"}
    splits = split_dataset(index, method="lists", lists={k: wsl4mis_root / v for k, v in lists.items()})
    assert [s.patients for s in (splits["train"], splits["val"], splits["test"])] == [
        ["patient001"], ["patient002"], ["patient101"],
    ]


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("wsl4mis_h5", tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="ACDC_training_slices"):
        read_dataset("wsl4mis_h5", tmp_path / "other")
    (tmp_path / "empty" / "ACDC_training_slices").mkdir(parents=True)
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("wsl4mis_h5", tmp_path / "empty")


def test_gap_in_slice_numbers_names_volume_and_k(wsl4mis_root):
    (wsl4mis_root / "ACDC_training_slices" / "patient002_frame01_slice_5.h5").unlink()
    with pytest.raises(DataError, match=r"patient002_frame01.*K=\[5\]"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_same_slice_number_twice(wsl4mis_root):
    folder = wsl4mis_root / "ACDC_training_slices"
    (folder / "patient001_frame01_slice_03.h5").write_bytes((folder / "patient001_frame01_slice_3.h5").read_bytes())
    with pytest.raises(DataError, match=r"slice_3\.h5: slice K=3 of volume patient001_frame01 .*_slice_03\.h5"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_misnamed_slice_file(wsl4mis_root):
    write_h5(wsl4mis_root / "ACDC_training_slices" / "patient001_frame01.h5", image=np.zeros(SHAPE, np.float32))
    with pytest.raises(DataError, match=r"ACDC_training_slices/patient001_frame01\.h5: not named"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_corrupt_h5_named(wsl4mis_root):
    (wsl4mis_root / "ACDC_training_slices" / "patient002_frame12_slice_10.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match="patient002_frame12_slice_10.h5: cannot read the HDF5"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_slice_without_image_dataset(wsl4mis_root):
    write_h5(wsl4mis_root / "ACDC_training_slices" / "patient001_frame12_slice_4.h5", label=np.zeros(SHAPE, np.uint8))
    with pytest.raises(DataError, match=r"patient001_frame12_slice_4.h5: no dataset 'image'"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_label_shape_mismatch_in_slice(wsl4mis_root):
    arrays = frame_arrays(0)
    write_h5(
        wsl4mis_root / "ACDC_training_slices" / "patient001_frame01_slice_2.h5",
        image=arrays["image"][2], label=np.zeros((24, 21), np.uint8), scribble=arrays["scribble"][2],
    )
    with pytest.raises(DataError, match=r"patient001_frame01_slice_2.h5: dataset 'label' has shape \(24, 21\)"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_slice_files_with_different_datasets(wsl4mis_root):
    arrays = frame_arrays(0)
    write_h5(wsl4mis_root / "ACDC_training_slices" / "patient001_frame01_slice_7.h5", image=arrays["image"][7])
    with pytest.raises(DataError, match=r"patient001_frame01_slice_7.h5: datasets .* differ"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_3d_image_in_slice_file(wsl4mis_root):
    write_h5(wsl4mis_root / "ACDC_training_slices" / "patient002_frame01_slice_0.h5", image=np.zeros((2, *SHAPE)))
    with pytest.raises(DataError, match=r"patient002_frame01_slice_0.h5: dataset 'image' has shape \(2, 24, 20\)"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_volume_file_disagrees_with_slice_count(wsl4mis_root):
    write_volume(wsl4mis_root, "patient002_frame12", frame_arrays(5, depth=DEPTH - 1))
    with pytest.raises(DataError, match=r"patient002_frame12.h5: image of shape \(11, 24, 20\).*12 slices"):
        read_dataset("wsl4mis_h5", wsl4mis_root)


def test_label_values_outside_classes_name_the_slice_file(wsl4mis_root):
    arrays = frame_arrays(0)
    label = arrays["label"][10].copy()
    label[0, 0] = 7
    write_h5(
        wsl4mis_root / "ACDC_training_slices" / "patient001_frame01_slice_10.h5",
        image=arrays["image"][10], label=label, scribble=arrays["scribble"][10],
    )
    index = read_dataset("wsl4mis_h5", wsl4mis_root).subset(["patient001"])
    with pytest.raises(DataError, match=r"patient001_frame01_slice_10.h5: label values \[7\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_scribble_value_outside_classes_and_ignore(wsl4mis_root):
    arrays = frame_arrays(99, depth=7)
    arrays["scribble"][3, 0, 0] = 5
    write_volume(wsl4mis_root, "patient101_frame01", arrays, keys=("image", "label", "scribble"))
    index = read_dataset("wsl4mis_h5", wsl4mis_root).subset(["patient101"])
    with pytest.raises(DataError, match=r"patient101_frame01.h5: label values \[5\].*\[0, 1, 2, 3, 4\]"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_nan_pixels_name_the_slice_file(wsl4mis_root):
    arrays = frame_arrays(1)
    image = arrays["image"][11].copy()
    image[3, 4] = np.nan
    write_h5(
        wsl4mis_root / "ACDC_training_slices" / "patient001_frame12_slice_11.h5",
        image=image, label=arrays["label"][11], scribble=arrays["scribble"][11],
    )
    index = read_dataset("wsl4mis_h5", wsl4mis_root).subset(["patient001"])
    with pytest.raises(DataError, match=r"patient001_frame12_slice_11.h5: 1 NaN or Inf"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_phantom_in_wsl4mis_form_matches_the_acdc_reader(tmp_path):
    """The phantom's NIfTI frames rewritten the WSL4MIS way ((H, W) slices, (D, H, W)
    volumes) load to the same arrays as the ACDC reader gives for the originals."""
    import nibabel as nib

    from alseg_monai.data import make_phantom

    acdc = read_dataset("acdc", make_phantom(tmp_path / "phantom", 2, image_size=32, progress=False))
    root = tmp_path / "wsl4mis"
    for volume in acdc.volumes:
        arrays = {k: np.asarray(nib.load(volume[k]).dataobj) for k in ("image", "label", "scribble")}
        stacked = {k: np.moveaxis(a, -1, 0) for k, a in arrays.items()}  # (H, W, D) -> (D, H, W)
        write_sliced(root, volume["id"], stacked)
        write_volume(root, volume["id"], stacked)
    wsl = read_dataset("wsl4mis_h5", root)
    assert [v["id"] for v in wsl.volumes] == [v["id"] for v in acdc.volumes]
    assert [s["id"] for s in wsl.slices] == [s["id"] for s in acdc.slices]
    assert wsl.patients == acdc.patients
    same = {"intensity": "percentile", "intensity_options": {"percentile": 99.0}, "progress": False}
    a_cache = SliceCache.from_index(acdc, image_size=16, **same)
    w_cache = SliceCache.from_index(wsl, image_size=16, **same)
    for volume in acdc.volumes:
        a, w = a_cache.volume(volume["id"]), w_cache.volume(volume["id"])
        for key in ("image", "label", "scribble", "label_original"):
            np.testing.assert_allclose(w[key], a[key], atol=1e-5, err_msg=f"{volume['id']} {key}")
