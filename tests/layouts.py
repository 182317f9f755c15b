"""Writers of small datasets in real layouts, shared by the tests."""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def locale_kept() -> Iterator[None]:
    """Around SimpleITK DICOM writes: GDCM's writer leaves the process in the "C"
    locale, which turns every later open() without an encoding in the test session
    into ASCII (and the first "±" into a UnicodeError far from the cause)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def acdc_volume(shape=(24, 20, 5), seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, label, scribble) with a disc LV, ring Myo and a side RV blob."""
    rng = np.random.default_rng(seed)
    h, w, d = shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    label2d = np.zeros((h, w), np.uint8)
    label2d[r < h / 3] = 2
    label2d[r < h / 5] = 3
    label2d[(np.abs(yy - h / 2) < 2) & (xx < w / 5)] = 1
    label = np.repeat(label2d[..., None], d, axis=2)
    image = (label * 60 + rng.normal(100, 10, shape)).astype(np.float32)
    scribble = np.full(shape, 4, np.uint8)
    scribble[h // 2, :, :] = label[h // 2, :, :]
    return image, label, scribble


def write_acdc_patient(
    root: Path, number: int, ed: int = 1, es: int = 12, shape=(24, 20, 5), scribbles: bool = True, seed: int = 0
) -> Path:
    folder = root / f"patient{number:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 180.0\nNbFrame: 30\nWeight: 80.0\n")
    for i, frame in enumerate((ed, es)):
        image, label, scribble = acdc_volume(shape, seed + 7 * number + i)
        stem = f"patient{number:03d}_frame{frame:02d}"
        write_nifti(folder / f"{stem}.nii.gz", image)
        write_nifti(folder / f"{stem}_gt.nii.gz", label)
        if scribbles:
            write_nifti(folder / f"{stem}_scribble.nii.gz", scribble)
    return folder


def itk_image(array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
    """A SimpleITK image of ``array`` stored ``(x, y, z)``, with an LPS grid as ITK keeps it."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in np.asarray(direction, dtype=float).ravel()))
    return image


def ras_affine(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> np.ndarray:
    """The nibabel (RAS+) affine of the LPS grid that :func:`itk_image` writes."""
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if direction is None else np.asarray(direction, dtype=float)) * np.asarray(spacing)
    affine[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def write_itk(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> Path:
    """NRRD / MHA (by suffix) with SimpleITK."""
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(itk_image(array, spacing, origin, direction), str(path))
    return path


def write_dicom_series(folder: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                       direction=None) -> Path:
    """One DICOM series (one int16 file per slice, named in reverse slice order so that
    only the position tags give the order), with the tags a scanner writes for its grid."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    volume = itk_image(np.asarray(array, dtype=np.int16), spacing, origin, direction)
    cosines = volume.GetDirection()
    depth = volume.GetDepth()
    for z in range(depth):
        image = volume[:, :, z]
        tags = {
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.1",  # study
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",  # series: one for all slices
            "0008|0060": "CT",
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, z))),
            "0020|0037": "\\".join(f"{v:.6f}" for v in cosines[0:7:3] + cosines[1:8:3]),
            "0018|0050": f"{spacing[2]:.6f}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{depth - 1 - z:03d}.dcm"))
        with locale_kept():
            writer.Execute(image)
    return folder
