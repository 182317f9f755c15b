"""Fixtures of the segmentation tests: a tiny ACDC-layout dataset read through the data layer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset

IMAGE_SIZE = 32


@dataclass
class RoundData:
    """Slices of patients 1-2 for training, patient 3's volumes for validation, patient 4's for test."""

    train_full: SliceDataset
    train_scribble: SliceDataset
    train_volumes: VolumeDataset
    val: VolumeDataset
    test: VolumeDataset
    num_classes: int
    ignore_index: int


@pytest.fixture
def round_data(acdc_root) -> RoundData:
    index = read_dataset("acdc", acdc_root)
    cache = SliceCache(index.volumes, IMAGE_SIZE, index.num_classes, index.ignore_index, progress=False)
    train_patients = {"patient001", "patient002"}
    train_slices = [s for s in index.slices if s["patient"] in train_patients]

    def volumes(patients):
        return VolumeDataset([v for v in index.volumes if v["patient"] in patients], cache)

    return RoundData(
        train_full=SliceDataset(train_slices, cache, keys=("image", "label")),
        train_scribble=SliceDataset(train_slices, cache, keys=("image", "scribble")),
        train_volumes=volumes(train_patients),
        val=volumes({"patient003"}),
        test=volumes({"patient004"}),
        num_classes=index.num_classes,
        ignore_index=index.ignore_index,
    )
