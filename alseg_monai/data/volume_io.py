"""Reading volumes from disk, one function per storage format.

Every loader returns arrays in one convention: image ``(C, H, W, D)`` float32, label and
scribble ``(H, W, D)`` integer, and a ``(4, 4)`` affine; ``D`` is the slice axis. Any
failure to read becomes a :class:`~alseg_monai.errors.DataError` that names the file.

Formats (the ``format`` field of a volume record):
    ``nifti``        one file per image / label / scribble (NIfTI via nibabel; NRRD, MHA,
                     MHD and single DICOM files via SimpleITK; a folder holding one DICOM
                     series, in slice-position order), 2D files become one-slice volumes.
                     A record's ``resample`` (``{"label": 0, "scribble": 4}``) names the
                     keys to resample onto the image grid, nearest neighbour, and the value
                     given outside their field of view (see :mod:`~alseg_monai.data.geometry`).
    ``h5_volume``    one HDF5 file with datasets ``image``, ``label``, ``scribble`` stored
                     ``(D, H, W)`` (the WSL4MIS convention).
    ``h5_slices``    a list of HDF5 files, one per slice, each with 2D datasets.
    ``dicom_png``    a DICOM series folder (SimpleITK) and one PNG mask per slice.
    ``frames``       a list of image files (JPEG/PNG, RGB kept) and one PNG mask per frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .geometry import Grid, resample_to_grid
from .records import natural_key

__all__ = ["check_label_values", "read_array"]

# Not MONAI's LoadImage: NibabelReader rewrites the affine of a file whose pixdim disagrees with
# its sform (grids would move), and ITKReader needs itk, not a dependency (SimpleITK is).
_ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _is_itk(path: Path) -> bool:
    return path.name.lower().endswith(_ITK_SUFFIXES)


def read_header(path: str | Path) -> tuple[tuple[int, ...], np.ndarray]:
    """``(stored shape, (4, 4) RAS+ affine)`` of a volume file or DICOM series folder,
    from its header(s) only (no voxel data is read).

    Raises:
        DataError: naming ``path`` when it is missing or its header cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        return _dicom_folder_header(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if _is_itk(path):
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            return tuple(int(s) for s in reader.GetSize()), _itk_affine(reader)
        import nibabel as nib

        image = nib.load(str(path))
        return tuple(int(s) for s in image.shape), np.asarray(image.affine, dtype=np.float64)
    except Exception as err:  # nibabel and SimpleITK raise many types on corrupt headers
        raise DataError(f"{path}: cannot read the image header ({type(err).__name__}: {err}); "
                        "expected a NIfTI (.nii, .nii.gz), NRRD, MHA or DICOM file") from err


def probe_image_shape(path: str | Path) -> tuple[int, ...]:
    """The stored array shape of a volume file, reading its header only."""
    return read_header(path)[0]


def read_grid(path: str | Path) -> Grid:
    """The voxel :class:`~alseg_monai.data.geometry.Grid` of a volume file, from its header."""
    return Grid.from_affine(*read_header(path))


def read_array(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a volume file into ``(array (H, W, D) or (H, W), affine (4, 4))``."""
    path = Path(path)
    if path.is_dir():
        return _read_dicom_folder(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if _is_itk(path):
            return _read_itk(path)
        import nibabel as nib

        image = nib.load(str(path))
        array = np.asanyarray(image.dataobj)
        return np.asarray(array), np.asarray(image.affine, dtype=np.float64)
    except DataError:
        raise
    except Exception as err:  # nibabel raises many types on truncated / corrupt files
        raise DataError(f"{path}: cannot read the image data ({type(err).__name__}: {err}); "
                        "the file may be truncated or not an image") from err


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)  # (z, y, x): reverse to nibabel's (x, y, z)
    array = np.ascontiguousarray(array.transpose(tuple(range(array.ndim))[::-1]))
    return array, _itk_affine(image)


def _itk_affine(image) -> np.ndarray:
    """RAS affine of a SimpleITK image or of an ``ImageFileReader`` after
    ``ReadImageInformation`` (ITK uses LPS)."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    affine = np.eye(4)
    affine[:dim, :dim] = direction * spacing
    affine[:dim, 3] = origin
    flip = np.diag([-1.0, -1.0] + [1.0] * (2 if dim >= 3 else 2))
    return flip @ affine


def _as_volume(array: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) -> (H, W, 1); (H, W, D) kept; (H, W, D, 1) squeezed; anything else refused."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(f"{path}: array of shape {tuple(array.shape)}; expected a 2D or 3D image")
    return array


def check_label_values(array: np.ndarray, path: str | Path, num_classes: int, extra: Sequence[int] = ()) -> None:
    """Raise :class:`DataError` naming ``path`` when ``array`` holds a value outside
    ``0 .. num_classes - 1`` (plus ``extra``, e.g. the scribble ignore value), and for NaN
    or Inf values and fractions, each named as such."""
    allowed = set(range(num_classes)) | {int(v) for v in extra}
    if not np.issubdtype(array.dtype, np.integer):
        finite = np.isfinite(array)
        if not np.all(finite):
            raise DataError(
                f"{path}: {int(array.size - finite.sum())} NaN or Inf voxels in a label; expected class indices "
                f"{sorted(allowed)} (a label map holds finite integers: give those voxels a class, e.g. 0 for "
                "background)"
            )
        fractional = array != np.round(array)
        if np.any(fractional):
            raise DataError(
                f"{path}: label values are not integers ({int(fractional.sum())} of {array.size} voxels, e.g. "
                f"{float(array[fractional].flat[0]):g}); expected class indices {sorted(allowed)}. A label resampled "
                "with linear interpolation has such values: resample it with nearest neighbour"
            )
    values = [int(v) for v in np.unique(array).astype(np.int64)]
    bad = [v for v in values if v not in allowed]
    if bad:
        held = f"{values[:20]}{' ...' if len(values) > 20 else ''}"
        if not extra and 0 <= values[0] and values[-1] < 255:
            fix = (f"if these are the dataset's classes, set num_classes to {values[-1] + 1} (--num_classes "
                   f"{values[-1] + 1} or the data config); else fix the file (or the reader's label_map)")
        else:
            fix = "fix the file, or set num_classes (or the reader's label_map) if the dataset has these classes"
        raise DataError(
            f"{path}: label values {bad[:10]} outside the classes; expected values in "
            f"{sorted(allowed)} (num_classes={num_classes}), and the file holds the values {held}; {fix}"
        )


def _load_nifti(record: dict) -> dict:
    image, affine = read_array(record["image"])
    image = _as_volume(image, Path(record["image"]))
    out = {"image": image[None].astype(np.float32), "affine": affine}
    for key in ("label", "scribble"):
        if record.get(key):
            array, own_affine = read_array(record[key])
            array = _as_volume(array, Path(record[key]))
            resample = record.get("resample") or {}
            if key in resample:  # {key: value outside the file's field of view}, set by the reader
                array = resample_to_grid(array, own_affine, Grid.from_affine(image.shape, affine), resample[key])
            out[key] = array
    return out


def _h5_datasets(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in keys if k == "image" and k not in handle]
            if missing:
                raise DataError(f"{path}: no dataset 'image' (found {sorted(handle.keys())})")
            return {k: np.asarray(handle[k]) for k in keys if k in handle}
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{path}: cannot read HDF5 file ({type(err).__name__}: {err})") from err


def _load_h5_volume(record: dict) -> dict:
    path = Path(record["image"])
    keys = ["image"] + [k for k in ("label", "scribble") if record.get(k)]
    data = _h5_datasets(path, keys)
    out = {"affine": np.eye(4)}
    for key, array in data.items():
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise DataError(f"{path}: dataset '{key}' has shape {array.shape}; expected (D, H, W)")
        out[key] = np.ascontiguousarray(np.moveaxis(array, 0, -1))
    out["image"] = out["image"][None].astype(np.float32)
    return out


def _load_h5_slices(record: dict) -> dict:
    keys = ["image"] + [k for k in ("label", "scribble") if record.get(k)]
    stacks: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for path in record["image"]:
        data = _h5_datasets(Path(path), keys)
        for key in keys:
            if key not in data:
                raise DataError(f"{path}: no dataset '{key}' although other slices of {record['id']} have it")
            array = data[key]
            if array.ndim != 2:
                raise DataError(f"{path}: dataset '{key}' has shape {array.shape}; expected a 2D slice (H, W)")
            stacks[key].append(array)
    out = {"affine": np.eye(4)}
    for key, arrays in stacks.items():
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise DataError(f"volume {record['id']}: slices of different shapes {sorted(shapes)} in '{key}'")
        out[key] = np.stack(arrays, axis=-1)
    out["image"] = out["image"][None].astype(np.float32)
    return out


def dicom_series_files(folder: str | Path) -> list[str]:
    """The DICOM files of the single series in ``folder``, in natural file-name order.

    File-name order is the slice order the CHAOS masks (``liver_GT_000.png`` ...)
    follow, so both are sorted the same way.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DICOM folder not found")
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key)
    if not files:
        raise DataError(f"{folder}: no DICOM files")
    return [str(p) for p in files]


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    files = dicom_series_files(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise DataError(f"{folder}: cannot read the DICOM series ({err})") from err
    array = sitk.GetArrayFromImage(image)  # (z, y, x) -> the (x, y, z) convention of volumes
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0)).astype(np.float32)), _itk_affine(image)


def _dicom_folder_files(folder: Path) -> list[str]:
    """The files of the one DICOM series in ``folder``, in slice-position order (GDCM's)."""
    import SimpleITK as sitk

    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(series) != 1:
        raise DataError(
            f"{folder}: a folder holding {len(series)} DICOM series; expected one series per folder "
            "(an image path may be a NIfTI / NRRD / MHA / DICOM file or a folder of one DICOM series)"
        )
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))


def _dicom_folder_header(folder: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine of the DICOM series in ``folder`` from the headers of its first and
    last slices: what ITK's series reader computes from all the pixels, without them."""
    import SimpleITK as sitk

    files = _dicom_folder_files(folder)
    headers = []
    for name in (files[0], files[-1]):
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            raise DataError(f"{name}: cannot read the DICOM header ({err}); expected a DICOM image") from err
        headers.append(reader)
    first, last = headers
    affine = _itk_affine(first)
    if len(files) == 1:  # one file, possibly multi-frame: its own header is the grid
        return tuple(int(s) for s in first.GetSize()), affine
    step = np.linalg.norm(np.subtract(last.GetOrigin(), first.GetOrigin())) / (len(files) - 1)
    affine[:3, 2] = affine[:3, 2] / np.linalg.norm(affine[:3, 2]) * step
    return (int(first.GetSize()[0]), int(first.GetSize()[1]), len(files)), affine


def _read_dicom_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(array (x, y, z), affine)`` of the DICOM series in ``folder``, read by ITK."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(_dicom_folder_files(folder))
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise DataError(f"{folder}: cannot read the DICOM series ({err})") from err
    array = sitk.GetArrayFromImage(image)  # (z, y, x) -> the (x, y, z) convention of volumes
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0))), _itk_affine(image)


def read_mask_stack(paths: Sequence[str], binarise: bool = True) -> np.ndarray:
    """Stack per-slice mask images (PNG) into ``(H, W, D)``; with ``binarise`` any
    non-zero value is foreground (1)."""
    from PIL import Image

    masks = []
    for path in paths:
        try:
            with Image.open(path) as img:
                array = np.asarray(img)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the mask image ({err})") from err
        if array.ndim == 3:
            array = array[..., 0]  # grey masks saved as RGB: channels are equal
        masks.append(array)
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise DataError(
            f"{Path(paths[0]).parent}: masks of different sizes {sorted(shapes)}; expected one size per volume"
        )
    # PNG rows are image rows (y) and columns x: transpose to the (x, y) convention of volumes.
    stack = np.stack([m.T for m in masks], axis=-1)
    return (stack > 0).astype(np.uint8) if binarise else stack


def _load_dicom_png(record: dict) -> dict:
    folder = Path(record["image"])
    image, affine = _read_dicom_series(folder)
    out = {"image": image[None], "affine": affine}
    if record.get("label"):
        label = read_mask_stack(record["label"])
        if label.shape[-1] != image.shape[-1]:
            raise DataError(
                f"{Path(record['label'][0]).parent}: {label.shape[-1]} mask slices for "
                f"{image.shape[-1]} DICOM slices in {folder}; expected one mask per slice"
            )
        out["label"] = label
    return out


def _load_frames(record: dict) -> dict:
    from PIL import Image

    frames = []
    for path in record["image"]:
        try:
            with Image.open(path) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the frame ({err})") from err
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(
            f"{Path(record['image'][0]).parent}: frames of different sizes {sorted(shapes)}; "
            "expected one size per video"
        )
    # (D, y, x, 3) -> (3, x, y, D): channel first, then the (x, y) convention of volumes.
    image = np.ascontiguousarray(np.stack(frames).transpose(3, 2, 1, 0)).astype(np.float32)
    out = {"image": image, "affine": np.eye(4)}
    if record.get("label"):
        out["label"] = read_mask_stack(record["label"])
    return out


LOADERS: dict[str, Callable[[dict], dict]] = {
    "nifti": _load_nifti,
    "h5_volume": _load_h5_volume,
    "h5_slices": _load_h5_slices,
    "dicom_png": _load_dicom_png,
    "frames": _load_frames,
}


def _remap_labels(array: np.ndarray, label_map: dict | None) -> np.ndarray:
    """Apply a record's ``label_map`` (stored value -> class, e.g. MS-CMR's 200/500/600);
    values it does not name are kept."""
    if not label_map:
        return array
    out = array.astype(np.int64, copy=True)
    for stored, target in label_map.items():
        out[array == int(stored)] = int(target)
    return out


def _source_name(record: dict, key: str) -> str:
    source = record.get(key)
    if isinstance(source, (list, tuple)):
        return str(Path(source[0]).parent) if source else "<none>"
    return str(source)


def _offending_slice(record: dict, key: str, bad: np.ndarray) -> str:
    """The file to name for a failed check of ``record[key]``: with one file per slice,
    the first slice whose ``bad`` mask ``(H, W, D)`` is set, so the user can find it."""
    source = record.get(key)
    if isinstance(source, (list, tuple)) and len(source) == bad.shape[-1]:
        hits = np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))
        if hits.size:
            return str(source[int(hits[0])])
    return _source_name(record, key)


def load_volume_arrays(record: dict, num_classes: int, ignore_index: int | None = None) -> dict:
    """Load and check one volume record.

    Returns:
        ``{"image": (C, H, W, D) float32, "label": (H, W, D) uint8 (if any),
        "scribble": (H, W, D) uint8 (if any), "affine": (4, 4)}``.

    Raises:
        DataError: unreadable file, non-finite voxels, label values outside
            ``0 .. num_classes - 1`` (scribbles may also hold ``ignore_index``), or
            image / label / scribble shapes that differ.
    """
    fmt = record.get("format")
    if fmt not in LOADERS:
        raise DataError(f"volume {record.get('id')}: unknown format {fmt!r}; expected one of {sorted(LOADERS)}")
    arrays = LOADERS[fmt](record)
    image = arrays["image"]
    if not np.all(np.isfinite(image)):
        bad = ~np.isfinite(image)
        name = _offending_slice(record, "image", bad.any(axis=0))
        raise DataError(
            f"{name}: {int(bad.sum())} NaN or Inf voxels; expected finite intensities (write the image with "
            "finite values, e.g. the background intensity, there)"
        )
    for key in ("label", "scribble"):
        if key not in arrays:
            continue
        array = _remap_labels(arrays[key], record.get("label_map"))
        if array.shape != image.shape[1:]:
            raise DataError(
                f"{_source_name(record, key)}: {key} shape {tuple(array.shape)} does not match the image "
                f"shape {tuple(image.shape[1:])} of {_source_name(record, 'image')}"
            )
        extra = (ignore_index,) if key == "scribble" and ignore_index is not None else ()
        try:
            check_label_values(array, _source_name(record, key), num_classes, extra)
        except DataError:
            # Checked again on the failure path only, to name the one slice file at fault.
            allowed = np.asarray(sorted(set(range(num_classes)) | set(extra)))
            check_label_values(array, _offending_slice(record, key, ~np.isin(array, allowed)), num_classes, extra)
            raise
        arrays[key] = array.astype(np.uint8)
    return arrays
