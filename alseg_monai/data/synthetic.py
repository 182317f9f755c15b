"""What the synthetic datasets share: drawing anatomy as ellipses with partial-volume
edges, writing reproducible NIfTI files, and a generator manifest that lets a finished
dataset be reused and an interrupted or outdated one be replaced.

Used by :func:`~alseg_monai.data.make_phantom` (cardiac cine MR, ACDC layout) and
:func:`~alseg_monai.data.make_abdomen_phantom` (abdominal CT, decathlon datalist).
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import ConfigError, DataError
from ..utils import atomic_write_json, read_json
from ..utils.io import atomic_write_bytes

__all__ = []

logger = logging.getLogger(__name__)

MANIFEST = "phantom.json"
_PATIENT_DIR = re.compile(r"patient\d{3,}")


def ellipse_distance(y, x, cy, cx, a, b, angle):
    """Approximate signed distance (mm, negative inside) to ellipses, broadcast over slices.

    ``y``, ``x``: (S, 1, 1) / (1, S, 1) grids; the ellipse parameters are scalars or (D,)
    arrays. The distance is ``(f - 1) sqrt(a b)`` with ``f`` the normalised radius:
    exact for circles, and good enough to draw a one-pixel partial-volume edge. An
    ellipse with a zero semi-axis is absent (distance +inf), not a dot.
    """
    cy, cx, a, b, angle = (np.asarray(v, dtype=np.float32) for v in (cy, cx, a, b, angle))
    present = np.minimum(a, b) > 0
    a, b = np.where(present, a, np.float32(1)), np.where(present, b, np.float32(1))
    dy, dx = y - cy, x - cx
    cos, sin = np.cos(angle), np.sin(angle)
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    distance = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - np.float32(1)) * np.sqrt(a * b)
    return np.where(present, distance, np.float32(np.inf))


def paint(image: np.ndarray, distance: np.ndarray, value: float, pixel: float) -> None:
    """Blend ``value`` into ``image`` in place, weighted by the shape's pixel coverage.

    The coverage ramps linearly over one pixel across the border (partial-volume edges).
    """
    weight = np.clip(np.float32(0.5) - distance / np.float32(pixel), 0.0, 1.0)
    image += weight * (np.float32(value) - image)


def centred_affine(spacing: Sequence[float], image_size: int) -> np.ndarray:
    """The (4, 4) affine of an (S, S, D) grid of ``spacing`` mm centred in-plane on the origin."""
    affine = np.diag([*spacing, 1.0])
    affine[:2, 3] = -(image_size - 1) / 2 * np.asarray(spacing[:2])
    return affine


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a .nii.gz atomically; mtime 0 in the gzip header keeps the bytes reproducible."""
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    atomic_write_bytes(path, gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))


@dataclass(frozen=True)
class GeneratedDataset:
    """The manifest (``phantom.json``) of a generated dataset under a root folder.

    It names the generator, its version and parameters, the patient folders it writes
    (listed before writing, so an interrupted run's folders are known) and, once every
    patient is written, ``complete`` and per-patient ``info``.
    """

    generator: str
    version: int

    def _header(self, params: dict) -> dict:
        return {"generator": self.generator, "version": self.version, "parameters": params}

    def manifest(self, root: Path) -> dict | None:
        """This generator's manifest under ``root``, or None."""
        path = root / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = read_json(path)
        except DataError:
            return None
        if not isinstance(manifest, dict) or manifest.get("generator") != self.generator:
            return None
        return manifest

    def is_complete(self, root: Path, params: dict, files: Callable[[str, dict], list[Path]]) -> bool:
        """Whether ``root`` holds a finished dataset of these parameters whose every
        file (``files(patient, info)``) exists."""
        manifest = self.manifest(root)
        if manifest is None or manifest.get("version") != self.version or manifest.get("parameters") != params:
            return False
        info = manifest.get("info")
        if manifest.get("complete") is not True or not isinstance(info, dict) or len(info) != params["num_patients"]:
            return False
        return all(path.is_file() for name, entry in info.items() for path in files(name, entry))

    def start(self, root: Path, params: dict, names: Sequence[str], overwrite: bool) -> None:
        """Make ``root`` ready for writing patients ``names``: refuse a foreign non-empty
        folder unless ``overwrite``, remove an earlier dataset's patient folders, and list
        the new ones in an incomplete manifest."""
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{self.generator} root: {root} is a file, expected a folder")
        manifest = self.manifest(root)
        if manifest is None and root.is_dir() and any(root.iterdir()) and not overwrite:
            raise ConfigError(
                f"{self.generator} root: {root} is not empty and holds no phantom ({MANIFEST} missing); "
                "choose an empty or new folder, or pass overwrite=True to write into it"
            )
        if manifest is not None:
            self._remove_patients(root, manifest)
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(root / MANIFEST, {**self._header(params), "complete": False, "patients": list(names)})

    def finish(self, root: Path, params: dict, names: Sequence[str], info: dict) -> None:
        """Mark the dataset complete, with per-patient ``info`` (what ``files`` needs)."""
        atomic_write_json(root / MANIFEST,
                          {**self._header(params), "complete": True, "patients": list(names), "info": info})

    @staticmethod
    def _remove_patients(root: Path, manifest: dict) -> None:
        """Remove the patient folders or files an earlier dataset listed (and only those)."""
        names = manifest.get("patients")
        for name in names if isinstance(names, list) else []:
            if not _PATIENT_DIR.fullmatch(str(name)):
                continue
            for path in [root / str(name), *root.glob(f"*/{name}.nii.gz")]:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.is_file():
                    path.unlink()
        logger.info("replacing the phantom at %s (parameters %s)", root, manifest.get("parameters"))


# --------------------------------------------------------------------------- variability
# Beyond 2x, sizes and intensities drawn near a range's end leave the plausible (and positive) range.
MAX_VARIABILITY = 2.0


def check_variability(variability: object) -> dict:
    """The generator parameters recording ``variability``: ``{}`` at 1 (so phantoms written
    before the knob existed are reused), else ``{"variability": value}``.

    Raises:
        ConfigError: not a number in [0, 2].
    """
    if isinstance(variability, bool) or not isinstance(variability, (int, float, np.integer, np.floating)) \
            or not 0 <= float(variability) <= MAX_VARIABILITY:
        raise ConfigError(f"variability: expected a number in [0, {MAX_VARIABILITY:g}], got {variability!r}")
    return {} if float(variability) == 1.0 else {"variability": float(variability)}


class RecordingRNG:
    """A generator that records its discrete draws (``integers``, ``choice`` and the
    argument-less ``uniform()`` the generators use as a coin), so that a centred twin
    replays the same discrete structure (pathology, slice count, phase, organ counts)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.discrete = rng, []

    def _record(self, value):
        self.discrete.append(value)
        return value

    def integers(self, *args, **kwargs):
        return self._record(self.rng.integers(*args, **kwargs))

    def choice(self, *args, **kwargs):
        return self._record(self.rng.choice(*args, **kwargs))

    def uniform(self, *args, **kwargs):
        value = self.rng.uniform(*args, **kwargs)
        return self._record(value) if not args and not kwargs else value

    def normal(self, *args, **kwargs):
        return self.rng.normal(*args, **kwargs)


class CentredRNG:
    """The population centre of every continuous draw (a uniform's midpoint, a normal's
    mean); the recorded discrete draws replayed in order."""

    def __init__(self, discrete) -> None:
        self.discrete = list(discrete)

    def _replay(self):
        return self.discrete.pop(0)

    def integers(self, *args, **kwargs):
        return self._replay()

    def choice(self, *args, **kwargs):
        return self._replay()

    def uniform(self, *args, size=None, **kwargs):
        if not args and not kwargs and size is None:
            return self._replay()
        low, high = (list(args) + [kwargs.get("low", 0.0), kwargs.get("high", 1.0)][len(args):])[:2]
        return _constant(0.5 * (low + high), size)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return _constant(loc, size)


def _constant(value: float, size):
    return float(value) if size is None else np.full(size, float(value))


def sample_with_centre(sample, rng: np.random.Generator, variability: float):
    """``(drawn, centre)``: ``sample(rng)`` and, unless ``variability`` is 1, the same
    sampler's population centre with the drawn discrete choices (``centre`` None at 1,
    where ``drawn`` is bit for bit what the generator drew before the knob existed)."""
    if float(variability) == 1.0:
        return sample(rng), None
    recorder = RecordingRNG(rng)
    drawn = sample(recorder)
    return drawn, sample(CentredRNG(recorder.discrete))


def scale_about_centre(drawn, centre, variability: float, keep=frozenset()):
    """``drawn`` with every float (in dicts, tuples, lists and arrays, recursively) moved
    to ``centre + variability x (drawn - centre)``; integers, strings and the top-level
    keys ``keep`` (within-patient variation) stay as drawn.

    Every per-patient continuous parameter of a generator varies about the value its
    sampler gives at the middle of each range, so one knob scales how much patients
    differ in anatomy size and position, intensities and contrast, bias field and noise.
    """
    v = float(variability)

    def scaled(a, c):
        if isinstance(a, dict):
            return {k: scaled(a[k], c[k]) for k in a}
        if isinstance(a, (tuple, list)):
            return type(a)(scaled(x, y) for x, y in zip(a, c))
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return c + v * (a - c)
        if isinstance(a, (float, np.floating)):
            return float(c + v * (a - c))
        return a

    return {k: (a if k in keep else scaled(a, centre[k])) for k, a in drawn.items()}
