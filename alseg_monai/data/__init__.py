"""Data layer: readers for native dataset layouts, slice records, preprocessing, caches,
splits, the synthetic phantoms (cardiac MR, abdominal CT, longitudinal brain MR) and
scribble synthesis."""

from __future__ import annotations

from .abdomen import make_abdomen_phantom
from .brain import make_brain_phantom
from .cache import SliceCache, SliceDataset, VolumeDataset
from .phantom import make_phantom
from .readers import read_dataset
from .records import DatasetIndex
from .scribbles import annotated_fraction, scribble_from_mask
from .splits import split_dataset
from .transforms import LoadVolumed, ResizeSlicesd, VolumeIntensityd
from .untracked import UntrackedDataset

__all__ = [
    "DatasetIndex",
    "LoadVolumed",
    "ResizeSlicesd",
    "SliceCache",
    "SliceDataset",
    "UntrackedDataset",
    "VolumeDataset",
    "VolumeIntensityd",
    "annotated_fraction",
    "make_abdomen_phantom",
    "make_brain_phantom",
    "make_phantom",
    "read_dataset",
    "scribble_from_mask",
    "split_dataset",
]
