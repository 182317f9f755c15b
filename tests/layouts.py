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
