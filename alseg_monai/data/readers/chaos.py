"""The CHAOS reader: abdominal CT with liver masks (CHAOS challenge, Kavur et al.,
Medical Image Analysis 2021), read in place.

Layout of the CHAOS release (zenodo.org/records/3431873: ``CHAOS_Train_Sets.zip`` unpacks
to ``Train_Sets/CT`` and ``Train_Sets/MR``, ``CHAOS_Test_Sets.zip`` to ``Test_Sets/...``,
as public CHAOS loaders such as nnU-Net's conversion script read them)::

    [CHAOS_Train_Sets/][Train_Sets/CT/]<patient>/DICOM_anon/*.dcm    one CT series
    [CHAOS_Train_Sets/][Train_Sets/CT/]<patient>/Ground/liver_GT_NNN.png   one mask per slice

``root`` may be any folder above the patient folders (or a patient folder itself): every
folder holding a ``DICOM_anon`` sub-folder is a patient. MR patients (``DICOM_anon``
under ``T1DUAL`` / ``T2SPIR``) are skipped with an info log: this reader is for the CT
liver task the paper uses (section 4, "Datasets"). A ``Train_Sets`` / ``Test_Sets``
folder above a patient sets its subset to ``training`` / ``testing``.

Records: one volume per patient, format ``dicom_png``; ``image`` = the DICOM folder,
``label`` = the masks in natural file-name order (the order the DICOM files are read in,
see :func:`~alseg_monai.data.volume_io.dicom_series_files`), or None without a
``Ground`` folder (the test sets); each slice record points at its own DICOM file and
mask. Masks hold 0 / 255; any non-zero pixel is liver (class 1), so ``num_classes`` is 2.
``spatial_shape`` is ``[columns, rows]`` of the first DICOM header, the ``(x, y)`` order
the loader returns; every mask must have that size and there must be one mask per DICOM
file (both checked here, before returning). Patient = volume = the patient folder name.

Options: ``num_classes=2``, ``ignore_index=2`` (the "unannotated" value of scribbles
synthesised from the masks; CHAOS ships none), ``image_dir="DICOM_anon"``,
``mask_dir="Ground"``. The CT window for intensities is a ``SliceCache`` setting
(default centre 40, width 400 HU).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...errors import DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from ..volume_io import dicom_series_files
from .common import check_root, volume_record

__all__ = ["read_chaos"]

logger = logging.getLogger(__name__)

_MR_FOLDERS = {"t1dual", "t2spir", "mr"}
_SUBSETS = {"train_sets": "training", "test_sets": "testing"}


def _patient_folders(root: Path, image_dir: str) -> list[Path]:
    """Folders holding an ``image_dir`` sub-folder, CT only, in natural order of name."""
    found = [p.parent for p in root.rglob(image_dir) if p.is_dir()]
    ct, mr = [], []
    for folder in found:
        parts = {part.lower() for part in folder.relative_to(root).parts} | {folder.name.lower()}
        (mr if parts & _MR_FOLDERS else ct).append(folder)
    if mr:
        logger.info("skipping %d MR series (e.g. %s); the chaos reader reads CT", len(mr), mr[0])
    return sorted(ct, key=lambda p: (natural_key(p.name), natural_key(p.relative_to(root))))


def _subset_of(folder: Path, root: Path) -> str | None:
    for part in reversed(folder.relative_to(root).parts):
        if part.lower() in _SUBSETS:
            return _SUBSETS[part.lower()]
    return None


def _dicom_slice_size(path: str | Path) -> tuple[int, int]:
    """``(columns, rows)`` of a DICOM file, from its header only.

    Raises:
        DataError: the file is not a readable DICOM image.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise DataError(f"{path}: cannot read the DICOM header ({err}); expected a DICOM image") from err
    size = reader.GetSize()
    return int(size[0]), int(size[1])


def _mask_files(folder: Path, dicom_folder: Path, count: int, size: tuple[int, int]) -> list[str]:
    """The masks of one patient, one per DICOM slice and of the DICOM size."""
    from PIL import Image

    masks = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"), key=natural_key)
    if len(masks) != count:
        raise DataError(
            f"{folder}: {len(masks)} PNG masks for {count} DICOM slices in {dicom_folder}; expected one mask per slice"
        )
    for path in masks:
        try:
            with Image.open(path) as img:
                mask_size = img.size  # (width, height): columns, rows as in DICOM
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the mask image ({err}); expected a PNG") from err
        if mask_size != size:
            raise DataError(
                f"{path}: mask of {mask_size[0]} x {mask_size[1]} (columns x rows) for DICOM slices of "
                f"{size[0]} x {size[1]} in {dicom_folder}; expected equal sizes"
            )
    return [str(p) for p in masks]


def read_chaos(
    root: str | Path,
    num_classes: int = 2,
    ignore_index: int = 2,
    image_dir: str = "DICOM_anon",
    mask_dir: str = "Ground",
) -> DatasetIndex:
    """Index a CHAOS CT folder (see the module docstring).

    Args:
        root: a folder above the patient folders.
        num_classes: 2 (background, liver).
        ignore_index: the "unannotated" value of scribbles synthesised from the masks.
        image_dir: name of the DICOM sub-folder of a patient.
        mask_dir: name of the PNG mask sub-folder of a patient.

    Raises:
        DataError: an unreadable first DICOM header or mask, a mask count different
            from the DICOM slice count, or a mask size different from the DICOM size.
    """
    root = check_root(root, "chaos")
    volumes, slices, subsets = [], [], {}
    for folder in _patient_folders(root, image_dir):
        patient = folder.name
        dicom_folder = folder / image_dir
        dicom_files = dicom_series_files(dicom_folder)
        size = _dicom_slice_size(dicom_files[0])
        masks = None
        if (folder / mask_dir).is_dir():
            masks = _mask_files(folder / mask_dir, dicom_folder, len(dicom_files), size)
        volume = volume_record(
            patient, patient, "dicom_png", str(dicom_folder), masks, None,
            num_slices=len(dicom_files), spatial_shape=size,
        )
        sources = [
            {"image": path, "label": masks[z] if masks else None, "scribble": None}
            for z, path in enumerate(dicom_files)
        ]
        volumes.append(volume)
        slices.extend(make_slice_records(volume, sources))
        subset = _subset_of(folder, root)
        if subset is not None:
            subsets[patient] = subset
    return DatasetIndex("chaos", str(root), volumes, slices, num_classes, 1, ignore_index, subsets)
