from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from layouts import locale_kept
from PIL import Image

from alseg_monai import DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset, split_dataset

ROWS, COLUMNS, DEPTH = 20, 24, 6


def write_dicom_series(folder: Path, hu: np.ndarray, spacing=(0.7, 0.7, 3.0)) -> list[Path]:
    """One CT slice per file, ``hu`` (D, rows, columns), named like CHAOS (i0000,0000b.dcm)."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(hu.astype(np.int16))
    volume.SetSpacing(spacing)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # write the UIDs set below, so the files form one series
    uid = "1.2.826.0.1.3680043.2.1125.4242"
    paths = []
    for z in range(hu.shape[0]):
        image = volume[:, :, z]
        for tag, value in (
            ("0008|0060", "CT"), ("0020|000d", f"{uid}.1"), ("0020|000e", f"{uid}.2"),
            ("0008|0018", f"{uid}.3.{z + 1}"), ("0020|0013", str(z + 1)),
            ("0020|0032", f"0\\0\\{spacing[2] * z}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
        ):
            image.SetMetaData(tag, value)
        path = folder / f"i{z:04d},0000b.dcm"
        writer.SetFileName(str(path))
        with locale_kept():
            writer.Execute(image)
        paths.append(path)
    return paths


def liver(seed: int, depth: int = DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """(HU (D, rows, columns), mask 0/255 of the same shape) with a liver blob at 60 HU."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((depth, ROWS, COLUMNS), np.uint8)
    mask[:, 4:12, 3 + seed % 5: 15 + seed % 5] = 255
    hu = rng.normal(-100, 10, mask.shape) + (mask > 0) * 160
    return hu, mask


def write_patient(folder: Path, seed: int, masks: bool = True, depth: int = DEPTH) -> np.ndarray:
    hu, mask = liver(seed, depth)
    write_dicom_series(folder / "DICOM_anon", hu)
    if masks:
        (folder / "Ground").mkdir(parents=True, exist_ok=True)
        for z in range(depth):
            Image.fromarray(mask[z]).save(folder / "Ground" / f"liver_GT_{z:03d}.png")
    return mask


@pytest.fixture
def chaos_root(tmp_path: Path) -> Path:
    """CHAOS CT training patients 1, 2, 10, test patient 3 (no masks), and an MR patient."""
    root = tmp_path / "CHAOS"
    for n in (1, 2, 10):
        write_patient(root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / str(n), n)
    write_patient(root / "CHAOS_Test_Sets" / "Test_Sets" / "CT" / "3", 3, masks=False)
    mr = root / "CHAOS_Train_Sets" / "Train_Sets" / "MR" / "1" / "T2SPIR" / "DICOM_anon"
    mr.mkdir(parents=True)
    (mr / "IMG-0004-00001.dcm").write_bytes(b"MR series, skipped by the CT reader")
    return root


def test_records_sources_and_subsets(chaos_root):
    index = read_dataset("chaos", chaos_root)
    assert [v["id"] for v in index.volumes] == ["1", "2", "3", "10"]
    assert index.patients == ["1", "2", "3", "10"]
    assert index.subsets == {"1": "training", "2": "training", "3": "testing", "10": "training"}
    first = index.volumes[0]
    assert first["format"] == "dicom_png" and first["image"].endswith("Train_Sets/CT/1/DICOM_anon")
    assert first["num_slices"] == DEPTH and first["spatial_shape"] == [COLUMNS, ROWS]
    assert [Path(p).name for p in first["label"][:2]] == ["liver_GT_000.png", "liver_GT_001.png"]
    assert index.volumes[2]["label"] is None
    slice_4 = index.slices[4]
    assert (slice_4["id"], slice_4["patient"], slice_4["slice"]) == ("1_slice_4", "1", 4)
    assert Path(slice_4["image"]).name == "i0004,0000b.dcm" and Path(slice_4["label"]).name == "liver_GT_004.png"
    assert all(s["label"] is None for s in index.slices if s["patient"] == "3")
    assert index.num_classes == 2 and index.channels == 1
    assert split_dataset(index, method="layout", fractions=(2, 1), seed=0)["test"].patients == ["3"]


def test_cache_window_and_aligned_masks(chaos_root):
    index = read_dataset("chaos", chaos_root)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    volume = VolumeDataset(index.volumes, cache)[3]
    assert volume["id"] == "10" and volume["image"].shape == (1, 16, 16, DEPTH)
    assert volume["spatial_shape"] == (COLUMNS, ROWS)
    _, mask = liver(10)
    # stored as (x, y, z): column, row, slice
    np.testing.assert_array_equal(volume["label_original"].numpy(), (mask > 0).transpose(2, 1, 0))
    item = SliceDataset(index.slices, cache)[2]
    assert item["image"].shape == (1, 16, 16) and item["label"].shape == (1, 16, 16)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert set(np.unique(item["label"].numpy())) == {0, 1}
    # the liver (60 HU) is brighter than the rest (-100 HU) in the soft-tissue window
    image, label = item["image"][0].numpy(), item["label"][0].numpy()
    assert image[label == 1].mean() > image[label == 0].mean() + 0.3
    assert "label" not in SliceDataset(index.slices, cache)[2 * DEPTH]  # test patient 3


def test_root_may_be_the_ct_folder_or_a_patient(chaos_root):
    ct = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT"
    assert read_dataset("chaos", ct).patients == ["1", "2", "10"]
    assert [v["id"] for v in read_dataset("chaos", ct / "2").volumes] == ["2"]


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("chaos", tmp_path / "nope")
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("chaos", tmp_path)


def test_mask_count_differs_from_dicom_count(chaos_root):
    patient = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "2"
    (patient / "Ground" / "liver_GT_005.png").unlink()
    with pytest.raises(DataError, match=r"CT/2/Ground: 5 PNG masks for 6 DICOM slices in .*CT/2/DICOM_anon"):
        read_dataset("chaos", chaos_root)


def test_mask_size_differs_from_dicom_size(chaos_root):
    patient = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "10"
    Image.fromarray(np.zeros((ROWS, COLUMNS + 1), np.uint8)).save(patient / "Ground" / "liver_GT_003.png")
    with pytest.raises(DataError, match=r"liver_GT_003.png: mask of 25 x 20 .* 24 x 20"):
        read_dataset("chaos", chaos_root)


def test_corrupt_dicom_named(chaos_root):
    path = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "1" / "DICOM_anon" / "i0000,0000b.dcm"
    path.write_bytes(b"not a dicom file")
    with pytest.raises(DataError, match=r"i0000,0000b.dcm: cannot read the DICOM header"):
        read_dataset("chaos", chaos_root)


def test_corrupt_mask_named(chaos_root):
    path = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "1" / "Ground" / "liver_GT_002.png"
    path.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"liver_GT_002.png: cannot read the mask"):
        read_dataset("chaos", chaos_root)


def test_empty_dicom_folder(tmp_path):
    (tmp_path / "7" / "DICOM_anon").mkdir(parents=True)
    with pytest.raises(DataError, match=r"7/DICOM_anon: no DICOM files"):
        read_dataset("chaos", tmp_path)


def test_corrupt_later_dicom_slice_named_when_loading(chaos_root):
    path = chaos_root / "CHAOS_Train_Sets" / "Train_Sets" / "CT" / "2" / "DICOM_anon" / "i0003,0000b.dcm"
    path.write_bytes(b"truncated")
    index = read_dataset("chaos", chaos_root).subset(["2"])  # only the first header is read here
    with pytest.raises(DataError, match=r"CT/2/DICOM_anon: cannot read the DICOM series"):
        SliceCache.from_index(index, image_size=16, progress=False)
