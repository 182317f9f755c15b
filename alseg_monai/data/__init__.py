"""Data layer: readers for native dataset layouts, slice records, preprocessing, caches,
splits, the synthetic cardiac phantom and scribble synthesis."""

from __future__ import annotations

from .phantom import make_phantom
from .scribbles import annotated_fraction, scribble_from_mask
from .cache import DEFAULT_INTENSITY, SliceCache, SliceDataset, VolumeDataset
from .readers import READERS, read_dataset
from .records import DatasetIndex, make_slice_records, natural_key, slice_id
from .splits import resolve_patient_list, split_dataset, split_patients
from .transforms import LoadVolumed, ResizeSlicesd, VolumeIntensityd, normalise_intensity, volume_preprocessing
from .volume_io import load_volume_arrays, probe_image_shape, read_array

__all__ = [
    "DEFAULT_INTENSITY",
    "READERS",
    "DatasetIndex",
    "LoadVolumed",
    "ResizeSlicesd",
    "annotated_fraction",
    "SliceCache",
    "SliceDataset",
    "VolumeDataset",
    "VolumeIntensityd",
    "load_volume_arrays",
    "make_phantom",
    "make_slice_records",
    "natural_key",
    "normalise_intensity",
    "probe_image_shape",
    "read_array",
    "read_dataset",
    "resolve_patient_list",
    "scribble_from_mask",
    "slice_id",
    "split_dataset",
    "split_patients",
    "volume_preprocessing",
]
