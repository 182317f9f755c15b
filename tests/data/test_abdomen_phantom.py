"""The abdominal CT phantom: datalist layout read by the datalist reader, reproducibility,
and the between-patient variability knob."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from alseg_monai.data import make_abdomen_phantom, read_dataset
from alseg_monai.data.phantom import slice_deviation_statistics
from alseg_monai.errors import ConfigError
from alseg_monai.utils import read_json


def images(root):
    return [np.asarray(nib.load(p).dataobj) for p in sorted((root / "imagesTr").glob("*.nii.gz"))]


def test_layout_is_a_liver_datalist(tmp_path):
    root = make_abdomen_phantom(tmp_path, 3, image_size=32, seed=1, progress=False)
    index = read_dataset("datalist", root / "dataset.json", num_classes=2)
    assert index.num_classes == 2 and len(index.volumes) == 3
    labels = [np.asarray(nib.load(p).dataobj) for p in sorted((root / "labelsTr").glob("*.nii.gz"))]
    assert all(set(np.unique(label)) == {0, 1} for label in labels)
    # a third or more of each stack holds no liver
    assert all((~label.any(axis=(0, 1))).mean() >= 0.3 for label in labels)


def test_same_seed_same_bytes_and_variability_one_is_the_old_phantom(tmp_path):
    first = make_abdomen_phantom(tmp_path / "a", 2, image_size=32, seed=4, progress=False)
    knob = make_abdomen_phantom(tmp_path / "b", 2, image_size=32, seed=4, progress=False, variability=1.0)
    for rel in sorted(p.relative_to(first) for p in first.rglob("*.nii.gz")):
        assert (first / rel).read_bytes() == (knob / rel).read_bytes(), rel
    assert "variability" not in read_json(first / "phantom.json")["parameters"]


def test_variability_widens_the_gap_between_patients_and_keeps_the_discrete_draws(tmp_path):
    gaps, phases = [], []
    for level in (0.0, 0.5, 1.5):
        root = make_abdomen_phantom(tmp_path / str(level), 5, image_size=32, seed=2, progress=False,
                                    variability=level)
        # one volume per patient: compare the middle 8 slices of every volume
        middles = [(str(i), img[..., img.shape[2] // 2 - 4:img.shape[2] // 2 + 4])
                   for i, img in enumerate(images(root))]
        stats = slice_deviation_statistics(middles)
        gaps.append(stats["overall"] - stats["patient"])
        manifest = read_json(root / "phantom.json")
        phases.append([manifest["info"][name]["phase"] for name in sorted(manifest["info"])])
        depths = [manifest["info"][name]["num_slices"] for name in sorted(manifest["info"])]
        assert [image.shape[2] for image in images(root)] == depths
    assert gaps[0] < gaps[1] < gaps[2]
    assert phases[0] == phases[1] == phases[2]  # the contrast phase is a discrete draw, replayed


@pytest.mark.parametrize("value", [-1.0, 3.0, None])
def test_variability_out_of_range_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="variability"):
        make_abdomen_phantom(tmp_path, 2, image_size=32, progress=False, variability=value)
