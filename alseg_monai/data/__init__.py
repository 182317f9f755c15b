"""Data layer: readers for native dataset layouts, slice records, preprocessing, caches,
splits, the synthetic cardiac phantom and scribble synthesis."""

from __future__ import annotations

from .abdomen import ABDOMEN_WINDOW, make_abdomen_phantom
from .phantom import make_phantom
from .scribbles import annotated_fraction, scribble_from_mask
from .cache import DEFAULT_INTENSITY, SliceCache, SliceDataset, VolumeDataset
from .geometry import GEOMETRY_TOLERANCES, Grid, GridDifference, grid_difference, resample_to_grid
from .readers import READERS, read_dataset
from .records import CLASS_NAMES, DatasetIndex, class_names, make_slice_records, natural_key, slice_id
from .splits import resolve_patient_list, split_dataset, split_patients
from .transforms import LoadVolumed, ResizeSlicesd, VolumeIntensityd, normalise_intensity, volume_preprocessing
from .volume_io import load_volume_arrays, probe_image_shape, read_array, read_grid, read_header

__all__ = [
    "ABDOMEN_WINDOW",
    "DEFAULT_INTENSITY",
    "GEOMETRY_TOLERANCES",
    "Grid",
    "GridDifference",
    "READERS",
    "CLASS_NAMES",
    "DatasetIndex",
    "LoadVolumed",
    "ResizeSlicesd",
    "annotated_fraction",
    "class_names",
    "SliceCache",
    "SliceDataset",
    "VolumeDataset",
    "VolumeIntensityd",
    "grid_difference",
    "load_volume_arrays",
    "make_abdomen_phantom",
    "make_phantom",
    "make_slice_records",
    "natural_key",
    "normalise_intensity",
    "probe_image_shape",
    "read_array",
    "read_grid",
    "read_header",
    "read_dataset",
    "resample_to_grid",
    "resolve_patient_list",
    "scribble_from_mask",
    "slice_id",
    "split_dataset",
    "split_patients",
    "volume_preprocessing",
]
