"""Image / label grids: the header check of every reader with geometry (NIfTI, NRRD, MHA,
DICOM), its tolerances, and the nearest-neighbour resampling option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from layouts import ras_affine, write_acdc_patient, write_dicom_series, write_itk, write_nifti

from alseg_monai import DataError
from alseg_monai.data import SliceCache, read_dataset
from alseg_monai.data.geometry import Grid, grid_difference, resample_to_grid
from alseg_monai.data.volume_io import read_array, read_grid

SHAPE = (12, 10, 4)


def boxes(shape=SHAPE, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8 0-2) with two nested boxes, not symmetric in any axis."""
    label = np.zeros(shape, np.uint8)
    label[2:9, 1:6] = 1
    label[3:5, 2:4, 1:] = 2
    image = (label * 30 + np.random.default_rng(seed).normal(50, 3, shape)).astype(np.float32)
    return image, label


def datalist(root: Path, items: list[dict], **extra) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "dataset.json"
    path.write_text(json.dumps({"labels": {"0": "bg", "1": "a", "2": "b"}, "training": items, **extra}))
    return path


# grids ------------------------------------------------------------------------------------
def test_grid_difference_names_the_field_with_both_values():
    affine = np.diag([0.7, 0.7, 3.3, 1.0])
    affine[:3, 3] = (-120.3, 33.17, 7.1)
    image = Grid.from_affine(SHAPE, affine)
    assert grid_difference(image, Grid.from_affine(SHAPE, affine.astype(np.float32))) is None  # header rounding
    assert grid_difference(image, Grid.from_affine(SHAPE + (1,), affine)) is None  # (H, W, D, 1) is (H, W, D)

    other = affine.copy()
    other[:3, :3] = np.diag([3.0, 3.0, 3.0])
    assert grid_difference(image, Grid.from_affine(SHAPE, other)) == ("spacing", "(3, 3, 3) mm", "(0.7, 0.7, 3.3) mm")
    assert grid_difference(image, Grid.from_affine(SHAPE, other)).tolerance == "relative tolerance 0.0001"
    other = affine.copy()
    other[0, 3] += 0.01  # 1.4 % of a 0.7 mm voxel
    assert grid_difference(image, Grid.from_affine(SHAPE, other)).field == "origin"
    other = affine.copy()
    other[:, 0] *= -1  # x flipped: voxel i of the label is voxel -i of the image
    field, theirs, ours = grid_difference(image, Grid.from_affine(SHAPE, other))
    assert field == "direction" and theirs.startswith("LAS") and ours.startswith("RAS")
    assert grid_difference(image, Grid.from_affine((12, 10, 5), affine)) == ("shape", "(12, 10, 5)", "(12, 10, 4)")


def test_resample_to_grid_nearest_with_fill_outside():
    coarse = np.array([[1, 2], [3, 0]], np.uint8)[..., None].repeat(2, axis=2)
    affine = np.diag([2.0, 2.0, 1.0, 1.0])
    affine[:2, 3] = 0.5  # the centre of coarse voxel 0 lies between fine voxels 0 and 1
    grid = Grid.from_affine((5, 4, 2), np.eye(4))
    out = resample_to_grid(coarse, affine, grid, fill=4)
    expected = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0], [4, 4, 4, 4]])
    np.testing.assert_array_equal(out[..., 0], expected)
    np.testing.assert_array_equal(out[..., 1], expected)


# readers ----------------------------------------------------------------------------------
def test_datalist_refuses_a_label_of_3mm_voxels_for_a_2mm_image(tmp_path):
    image, label = boxes()
    write_nifti(tmp_path / "img" / "a.nii.gz", image, np.diag([2.0, 2.0, 2.0, 1.0]))
    write_nifti(tmp_path / "lab" / "a.nii.gz", label, np.diag([3.0, 3.0, 3.0, 1.0]))
    path = datalist(tmp_path, [{"image": "img/a.nii.gz", "label": "lab/a.nii.gz"}])
    with pytest.raises(DataError) as info:
        read_dataset("datalist", path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'lab' / 'a.nii.gz'}: spacing (3, 3, 3) mm does not match the image "
                              f"{tmp_path / 'img' / 'a.nii.gz'} of spacing (2, 2, 2) mm"), message
    assert "resample_labels" in message


def test_nrrd_image_and_nifti_label_compare_in_one_frame(tmp_path):
    """ITK's LPS header and nibabel's RAS affine describe the same grid: accepted; an MHA
    scribble shifted by a voxel is refused, naming the origin."""
    image, label = boxes()
    grid = {"spacing": (0.8, 0.9, 2.5), "origin": (-40.0, 12.0, 3.0),
            "direction": [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}
    write_itk(tmp_path / "a.nrrd", image, **grid)
    write_nifti(tmp_path / "a_gt.nii.gz", label, ras_affine(**grid))
    path = datalist(tmp_path, [{"image": "a.nrrd", "label": "a_gt.nii.gz"}])
    index = read_dataset("datalist", path)
    assert "resample" not in index.volumes[0]
    write_itk(tmp_path / "a_scribble.mha", label, **{**grid, "origin": (-40.0, 12.9, 3.0)})
    path = datalist(tmp_path, [{"image": "a.nrrd", "label": "a_gt.nii.gz", "scribble": "a_scribble.mha"}])
    with pytest.raises(DataError, match=r"a_scribble.mha: origin \(40, -12.9, 3\) mm does not match the image "
                                        r".*a.nrrd of origin \(40, -12, 3\) mm"):
        read_dataset("datalist", path)


def test_dicom_series_image_with_nifti_label(tmp_path):
    """A DICOM series folder as a datalist image: its grid from two headers equals ITK's
    full read; a label on it loads aligned, a label with a flipped axis is refused."""
    image, label = boxes()
    grid = {"spacing": (0.7, 0.8, 2.5), "origin": (-10.0, 20.0, 5.0),
            "direction": [[np.cos(0.3), -np.sin(0.3), 0.0], [np.sin(0.3), np.cos(0.3), 0.0], [0.0, 0.0, 1.0]]}
    write_dicom_series(tmp_path / "ct" / "series1", image.round() * 10, **grid)
    assert grid_difference(read_grid(tmp_path / "ct" / "series1"),
                           Grid.from_affine(SHAPE, read_array(tmp_path / "ct" / "series1")[1])) is None
    write_nifti(tmp_path / "labels" / "series1.nii.gz", label, ras_affine(**grid))
    path = datalist(tmp_path, [{"image": "ct/series1", "label": "labels/series1.nii.gz"}])
    index = read_dataset("datalist", path)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    stored = read_array(tmp_path / "ct" / "series1")[0]
    np.testing.assert_array_equal(stored, (image.round() * 10).astype(np.int16))  # slice order from positions
    np.testing.assert_array_equal(cache.volume("series1")["label_original"], label)

    flipped = ras_affine(**grid) @ np.array([[-1, 0, 0, SHAPE[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    write_nifti(tmp_path / "labels" / "series1.nii.gz", label[::-1], flipped)
    with pytest.raises(DataError, match=r"series1.nii.gz: direction .* does not match the image .*series1 of direction"):
        read_dataset("datalist", path)


def test_resample_labels_option_puts_labels_on_the_image_grid(tmp_path):
    """A label stored at half resolution and a scribble covering part of the image:
    refused by default; with ``resample_labels`` loaded on the image grid, background
    outside the label and "unannotated" outside the scribble."""
    image, label = boxes()
    write_nifti(tmp_path / "a.nii.gz", image, np.eye(4))
    coarse_affine = np.diag([2.0, 2.0, 1.0, 1.0])
    coarse_affine[:2, 3] = 0.5
    write_nifti(tmp_path / "a_gt.nii.gz", label[::2, ::2], coarse_affine)
    write_nifti(tmp_path / "a_scr.nii.gz", label[:6], np.eye(4))
    path = datalist(tmp_path, [{"image": "a.nii.gz", "label": "a_gt.nii.gz", "scribble": "a_scr.nii.gz"}])
    with pytest.raises(DataError, match=r"a_gt.nii.gz: shape \(6, 5, 4\) does not match .*resample_labels=true"):
        read_dataset("datalist", path)
    index = read_dataset("datalist", path, resample_labels=True)
    assert index.volumes[0]["resample"] == {"label": 0, "scribble": 3}
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    expected = label[::2, ::2].repeat(2, axis=0).repeat(2, axis=1)[:12, :10]
    np.testing.assert_array_equal(cache.volume("a")["label_original"], expected)
    assert cache.volume("a")["scribble"].shape == (16, 16, 4)
    scribble = resample_to_grid(label[:6], np.eye(4), Grid.from_affine(SHAPE, np.eye(4)), fill=3)
    np.testing.assert_array_equal(scribble[:6], label[:6])
    assert np.all(scribble[6:] == 3)


def test_acdc_and_mscmr_readers_check_the_grid(tmp_path):
    folder = write_acdc_patient(tmp_path / "acdc", 1)
    gt = folder / "patient001_frame01_gt.nii.gz"
    import nibabel as nib

    stored = nib.load(str(gt))
    write_nifti(gt, np.asarray(stored.dataobj), np.diag([1.0, 1.0, 10.0, 1.0]))
    with pytest.raises(DataError, match=r"patient001_frame01_gt.nii.gz: spacing \(1, 1, 10\) mm does not match the "
                                        r"image .*patient001_frame01.nii.gz of spacing \(1, 1, 1\) mm"):
        read_dataset("acdc", tmp_path / "acdc")
    index = read_dataset("acdc", tmp_path / "acdc", resample_labels=True)
    assert [v.get("resample") for v in index.volumes] == [{"label": 0}, None]

    image, label = boxes()
    root = tmp_path / "mscmr" / "train"
    write_nifti(root / "images" / "subject1_DE.nii.gz", image, np.eye(4))
    origin = np.eye(4)
    origin[:3, 3] = (0.0, 0.0, -1.0)
    write_nifti(root / "labels" / "subject1_DE_scribble.nii.gz", label, origin)
    with pytest.raises(DataError, match=r"subject1_DE_scribble.nii.gz: origin \(0, 0, -1\) mm does not match"):
        read_dataset("mscmr", tmp_path / "mscmr")
    assert read_dataset("mscmr", tmp_path / "mscmr", resample_labels=True).volumes[0]["resample"] == {"scribble": 4}


# label values -----------------------------------------------------------------------------
def test_nan_and_fractions_in_a_label_named_as_such(tmp_path):
    image, label = boxes()
    write_nifti(tmp_path / "a.nii.gz", image)
    bad = label.astype(np.float32)
    bad[1, 1, 1] = np.nan
    bad[2, 2, 2] = np.inf
    write_nifti(tmp_path / "a_gt.nii.gz", bad)
    index = read_dataset("datalist", datalist(tmp_path, [{"image": "a.nii.gz", "label": "a_gt.nii.gz"}]))
    with pytest.raises(DataError, match=r"a_gt.nii.gz: 2 NaN or Inf voxels in a label; expected class indices \[0, 1, 2\]"):
        SliceCache.from_index(index, image_size=16, progress=False)
    bad = label.astype(np.float32)
    bad[1, 1, 1] = 0.5
    write_nifti(tmp_path / "a_gt.nii.gz", bad)
    with pytest.raises(DataError, match=r"a_gt.nii.gz: label values are not integers \(1 of 480 voxels, e.g. 0.5\).*nearest"):
        SliceCache.from_index(index, image_size=16, progress=False)


def test_nifti_affine_is_the_sform_even_when_pixdim_disagrees(tmp_path):
    # Why volume_io reads NIfTI with nibabel, not MONAI's LoadImage: MONAI's NibabelReader
    # replaces such an affine, which would move every grid (and resampled label) of a run.
    import nibabel as nib
    from monai.transforms import LoadImage

    image, _ = boxes()
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nifti = nib.Nifti1Image(image, affine)
    nifti.header.set_zooms((1.0, 1.0, 1.0))
    path = tmp_path / "image.nii.gz"
    nib.save(nifti, str(path))
    array, read_affine = read_array(path)
    np.testing.assert_array_equal(array, image)
    np.testing.assert_array_equal(read_affine, affine)
    np.testing.assert_array_equal(read_grid(path).affine, affine)
    monai_affine = LoadImage(reader="NibabelReader", image_only=True)(str(path)).affine.numpy()
    assert not np.allclose(monai_affine, affine)
