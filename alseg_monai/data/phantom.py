"""A synthetic short-axis cine-MR dataset in the official ACDC layout.

The toolkit's demo, tutorials and tests need a dataset that behaves like ACDC (paper
Sec. 4: 100 training patients, an ED and an ES volume each, classes 0 background,
1 RV, 2 myocardium, 3 LV, scribbles) without downloading it. :func:`make_phantom`
draws one from a seed:

* anatomy per patient: LV cavity radius, wall thickness, slight ellipticity, RV
  crescent width / extent / angle, heart position and tilt, body and lung shape,
  organ-like blobs (liver, spine, aorta, random ones), field of view; the ACDC
  pathology group (NOR, MINF, DCM, HCM, RV) shifts these (dilated LV, thick wall,
  large RV, weak contraction);
* ES contracted vs ED: smaller LV cavity with the myocardial area kept (so a thicker
  wall), smaller RV, a small shift of the heart;
* D slices from base (z = 0) to apex, structures shrinking towards the apex and the
  RV vanishing before it; a tiny per-slice jitter of the heart (shared by ED and ES,
  as both frames of a slice come from one breath-hold);
* appearance per patient, as in bSSFP cine: bright blood, dark myocardium, bright fat
  (subcutaneous ring and epicardial fat), dark lungs, tissue contrasts, a smooth
  multiplicative bias field, tissue texture, Rician noise, int16 intensities of a few
  hundred; partial-volume edges.

Patients differ more than the slices of one patient do, which is the premise of the
paper's group losses (Sec. 3.2.1): :func:`slice_deviation_statistics` measures it as
the paper did on ACDC (0.217 over the dataset, 0.159 within patients, 0.166 within
volumes, 0.115 between adjacent slices); 20 phantom patients at 128 x 128 give 0.200 /
0.121 / 0.124 / 0.088, the same order (docs/benchmarks.md, section ``phantom``).

How much patients differ is a knob, ``variability`` (1 by default, the phantom as it
always was): every between-patient parameter moves about its population centre. On the
paper's statistic, the part of the overall deviation that the patients add beyond their
own slices (overall - patient) is 0.058 on ACDC; 20 phantom patients at 128 x 128 give
0.002 at variability 0, 0.051 at 0.5, 0.059 at 0.6, 0.079 at 1 and 0.111 at 2, so 0.6 is
the ACDC-calibrated level and the default phantom's patients differ somewhat more than
ACDC's (relative to their slices).

Written files (patients ``patient001`` ...)::

    root/phantom.json                       generator parameters (reuse / refusal)
    root/patientNNN/Info.cfg                ED, ES, Group, Height, NbFrame, Weight
    root/patientNNN/patientNNN_frameFF.nii.gz           int16 image (H, W, D)
    root/patientNNN/patientNNN_frameFF_gt.nii.gz        uint8 labels 0-3
    root/patientNNN/patientNNN_frameFF_scribble.nii.gz  uint8 scribble, 4 = unannotated

for FF = 01 (ED) and the ES frame of Info.cfg, with a 2-2.7 mm in-plane and 5-10 mm
slice spacing in the affine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..utils import atomic_write_text, derive_seed
from ..utils.progress import bar_disable
from .scribbles import scribble_from_mask
from .synthetic import (
    MANIFEST,
    GeneratedDataset,
    centred_affine,
    check_variability,
    ellipse_distance,
    paint,
    sample_with_centre,
    scale_about_centre,
    write_nifti,
)

__all__ = ["make_phantom"]

logger = logging.getLogger(__name__)

PHANTOM_MANIFEST = MANIFEST
PHANTOM_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
# Bump the version when the generator's output changes, so cached phantoms are regenerated.
_DATASET = GeneratedDataset("alseg_monai.data.make_phantom", version=3)
_ED_FRAME = 1
_NUM_CLASSES = 4
_IGNORE_INDEX = 4
_MIN_IMAGE_SIZE = 32
_MIN_SLICES = 3
# Fields of a patient that vary within the patient (slice to slice, ED to ES), which the
# variability knob leaves alone; every other float field varies between patients.
_WITHIN_PATIENT = frozenset({"es_cavity", "es_rv", "es_shift", "jitter_centre", "jitter_radius", "slice_shift",
                             "slice_gain"})


@dataclass(frozen=True)
class _Patient:
    """Everything random about one phantom patient (lengths in mm, angles in radians)."""

    group: str
    num_slices: int
    es_frame: int
    num_frames: int
    height_cm: float
    weight_kg: float
    spacing: tuple[float, float, float]
    # body ellipse (cy, cx, a, b, angle) at mid-stack, its relative size change and centre
    # drift (mm) from base to apex (the short-axis stack is oblique to the body); blobs: see _sample_blobs
    body: tuple[float, float, float, float, float]
    body_taper: float
    body_drift: tuple[float, float]
    fat_thickness: float
    blobs: tuple[tuple[float, ...], ...]
    # heart at ED
    lv_centre: tuple[float, float]
    lv_tilt: tuple[float, float]
    endo_radius: float
    wall: float
    lv_ratio: float
    lv_angle: float
    apex_scale: float
    taper_power: float
    rv_angle: float
    rv_width: float
    rv_extent: float
    rv_depth: float
    rv_end: float
    epicardial_fat: float
    # ES changes
    es_cavity: float
    es_rv: float
    es_shift: tuple[float, float]
    # per-slice jitter, shared by ED and ES: heart centre (D, 2) mm, heart radius factor (D,),
    # whole-slice shift (D, 2) mm and gain (D,) (each slice is its own breath-hold)
    jitter_centre: np.ndarray
    jitter_radius: np.ndarray
    slice_shift: np.ndarray
    slice_gain: np.ndarray
    # appearance
    values: dict[str, float]
    scale: float
    noise: float
    bias: tuple[float, ...]
    texture_seed: int


def make_phantom(
    root: str | Path,
    num_patients: int,
    image_size: int = 128,
    seed: int = 0,
    slices: Sequence[int] = (8, 14),
    overwrite: bool = False,
    progress: bool = True,
    variability: float = 1.0,
) -> Path:
    """Write a synthetic ACDC-layout cardiac cine-MR dataset under ``root`` (see the module doc).

    Args:
        root: output folder; created if missing.
        num_patients: number of patients (``patient001`` ...), >= 1.
        image_size: in-plane size S of every volume, (S, S, D), >= 32.
        seed: dataset seed; the same seed gives byte-identical files.
        slices: (min, max) number of slices D per patient, inclusive, min >= 3.
        overwrite: allow writing into a non-empty folder that is not a phantom.
        progress: show a tqdm progress bar over patients.
        variability: scale of the differences between patients (:func:`~.synthetic.scale_about_centre`):
            every per-patient continuous parameter (anatomy size and position, intensities
            and contrast, bias field, noise, acquisition) is moved to ``centre + variability x
            (drawn - centre)``; 1 is the phantom as it always was, 0 leaves only the pathology
            group, slice count and the within-patient variation. The slice count varies with
            ``slices``.

    Returns:
        ``root`` as a Path. A folder that already holds a complete phantom made with the
        same parameters is reused as it is; a phantom made with other parameters (or an
        interrupted one) is replaced.

    Raises:
        ConfigError: invalid parameters, ``root`` is a file, or ``root`` is a non-empty
            folder without a phantom and ``overwrite`` is False.
    """
    params = _check_parameters(num_patients, image_size, seed, slices, variability)
    root = Path(root)
    if _DATASET.is_complete(root, params, lambda name, info: _frame_files(root, name, int(info["ES"]))):
        logger.info("reusing the phantom at %s (%d patients)", root, num_patients)
        return root
    start = time.perf_counter()
    names = [f"patient{number:03d}" for number in range(1, num_patients + 1)]
    _DATASET.start(root, params, names, overwrite)
    frames = {}
    for number, name in enumerate(tqdm(names, desc="phantom", unit="patient", disable=bar_disable(progress)), start=1):
        spec = _sample_scaled_patient(derive_seed(seed, "patient", number), image_size, params["slices"],
                                      params.get("variability", 1.0))
        _write_patient(root / name, name, spec, image_size, seed)
        frames[name] = {"ES": spec.es_frame, "num_slices": spec.num_slices}
    _DATASET.finish(root, params, names, frames)
    logger.info("wrote a %d-patient phantom to %s in %.1f s", num_patients, root, time.perf_counter() - start)
    return root


def normalise_volume(image: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Clip a volume at its ``percentile`` and min-max scale it to [0, 1] (the ACDC preprocessing).

    Args:
        image: array of any shape (one volume).

    Returns:
        float32 array of the same shape; all zeros for a constant volume.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.size == 0:
        raise DataError(f"image: expected a non-empty volume, got shape {image.shape}")
    clipped = np.minimum(image, np.percentile(image, percentile))
    low, high = clipped.min(), clipped.max()
    if high <= low:
        return np.zeros_like(clipped)
    return (clipped - low) / (high - low)


def mean_pairwise_deviation(slices: np.ndarray) -> float:
    """Mean over pixels of the mean absolute difference over all pairs of slices.

    Computed exactly without forming the pairs: for the values of one pixel sorted
    ascending, x_(1) <= ... <= x_(N), sum_{i<j} |x_i - x_j| = sum_k (2k - N - 1) x_(k).

    Args:
        slices: (N, ...) array, N >= 2 slices of one shape.
    """
    slices = np.asarray(slices, dtype=np.float64)
    if slices.ndim < 2 or slices.shape[0] < 2:
        raise DataError(f"slices: expected an (N, ...) array with N >= 2 slices, got shape {slices.shape}")
    count = slices.shape[0]
    ordered = np.sort(slices.reshape(count, -1), axis=0)
    weights = 2.0 * np.arange(1, count + 1) - count - 1
    pair_sums = weights @ ordered
    return float(pair_sums.mean() / (count * (count - 1) / 2))


def slice_deviation_statistics(volumes: Iterable[tuple[str, np.ndarray]], percentile: float = 99.0) -> dict[str, float]:
    """The paper's diversity statistic of slice groups (Sec. 3.2.1; ACDC: 0.217 / 0.159 / 0.166 / 0.115).

    Each volume is normalised with :func:`normalise_volume`; then the mean pairwise
    absolute deviation of slice pixel values (:func:`mean_pairwise_deviation`) is taken
    over all slices of the dataset (``overall``), within each patient (``patient``,
    mean over patients), within each volume (``volume``, mean over volumes) and over
    pairs of adjacent slices of a volume (``adjacent``, mean over pairs).

    Args:
        volumes: (patient id, image) pairs, image (H, W, D) with one (H, W) for all.

    Returns:
        dict with keys ``overall``, ``patient``, ``volume``, ``adjacent``.
    """
    by_patient: dict[str, list[np.ndarray]] = {}
    volume_values, adjacent_values, shape = [], [], None
    for patient, image in volumes:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] < 2:
            raise DataError(f"volume of {patient}: expected an (H, W, D) image with D >= 2, got shape {image.shape}")
        if shape is None:
            shape = image.shape[:2]
        elif image.shape[:2] != shape:
            raise DataError(
                f"volume of {patient}: slice shape {image.shape[:2]} differs from the first volume's {shape}"
            )
        stack = np.moveaxis(normalise_volume(image, percentile), 2, 0)
        by_patient.setdefault(patient, []).append(stack)
        volume_values.append(mean_pairwise_deviation(stack))
        adjacent_values.extend(np.abs(np.diff(stack.astype(np.float64), axis=0)).mean(axis=(1, 2)).tolist())
    if len(by_patient) < 2:
        raise DataError(f"volumes: expected volumes of at least 2 patients, got {len(by_patient)}")
    patient_stacks = [np.concatenate(stacks) for stacks in by_patient.values()]
    return {
        "overall": mean_pairwise_deviation(np.concatenate(patient_stacks)),
        "patient": float(np.mean([mean_pairwise_deviation(stack) for stack in patient_stacks])),
        "volume": float(np.mean(volume_values)),
        "adjacent": float(np.mean(adjacent_values)),
    }


# --------------------------------------------------------------------------- folder
def _check_parameters(num_patients, image_size, seed, slices, variability=1.0) -> dict:
    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(num_patients) or num_patients < 1:
        raise ConfigError(f"num_patients: expected an integer >= 1, got {num_patients!r}")
    if not is_int(image_size) or image_size < _MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size: expected an integer >= {_MIN_IMAGE_SIZE}, got {image_size!r}")
    if not is_int(seed) or seed < 0:
        raise ConfigError(f"seed: expected an integer >= 0, got {seed!r}")
    try:
        low, high = slices
    except (TypeError, ValueError) as err:
        raise ConfigError(f"slices: expected a pair (min, max), got {slices!r}") from err
    if not (is_int(low) and is_int(high)) or not _MIN_SLICES <= low <= high:
        raise ConfigError(f"slices: expected integers {_MIN_SLICES} <= min <= max, got {slices!r}")
    return {"num_patients": int(num_patients), "image_size": int(image_size), "seed": int(seed),
            "slices": [int(low), int(high)], **check_variability(variability)}


def _frame_files(root: Path, name: str, es_frame: int) -> list[Path]:
    files = [root / name / "Info.cfg"]
    for frame in (_ED_FRAME, es_frame):
        stem = f"{name}_frame{frame:02d}"
        files += [root / name / f"{stem}{suffix}.nii.gz" for suffix in ("", "_gt", "_scribble")]
    return files


# --------------------------------------------------------------------------- sampling
def _sample_scaled_patient(seed: int, image_size: int, slices: Sequence[int], variability: float) -> _Patient:
    """One patient drawn with ``seed``, its between-patient variation scaled by ``variability``."""
    def sample(rng):
        return _sample_patient(rng, image_size, slices)

    drawn, centre = sample_with_centre(sample, np.random.default_rng(seed), variability)
    if centre is None:
        return drawn
    within = {name: getattr(drawn, name) for name in _WITHIN_PATIENT}
    scaled = scale_about_centre(vars(drawn), vars(centre), variability, keep=_WITHIN_PATIENT)
    return _Patient(**{**scaled, **within})


def _sample_patient(rng: np.random.Generator, image_size: int, slices: Sequence[int]) -> _Patient:
    """Draw one patient's anatomy, acquisition and appearance (ACDC-like ranges)."""
    group = PHANTOM_GROUPS[int(rng.integers(len(PHANTOM_GROUPS)))]
    num_slices = int(rng.integers(slices[0], slices[1] + 1))
    num_frames = int(rng.integers(12, 36))
    es_frame = int(np.clip(round(num_frames * rng.uniform(0.3, 0.45)), 2, num_frames))
    fov = rng.uniform(260.0, 340.0)
    pixel = fov / image_size
    slice_spacing = float(np.clip(round(rng.uniform(85.0, 115.0) / num_slices * 2) / 2, 5.0, 10.0))

    # Drawn in this order (endo, wall, cavity, rv_width): the phantom's numbers depend on it.
    endo, wall = rng.uniform(20.0, 26.0), rng.uniform(7.0, 10.0)
    cavity, rv_width = rng.uniform(0.55, 0.7), rng.uniform(11.0, 18.0)
    if group == "DCM":
        endo, wall, cavity = endo * rng.uniform(1.25, 1.45), wall * 0.8, rng.uniform(0.8, 0.92)
    elif group == "HCM":
        endo, wall, cavity = endo * 0.85, wall * rng.uniform(1.5, 1.9), rng.uniform(0.4, 0.55)
    elif group == "MINF":
        endo, wall, cavity = endo * 1.15, wall * 0.85, rng.uniform(0.75, 0.88)
    elif group == "RV":
        rv_width *= rng.uniform(1.4, 1.8)

    body_a, body_b = rng.uniform(135.0, 170.0), rng.uniform(95.0, 125.0)
    body_cy, body_cx = rng.uniform(-12.0, 12.0), rng.uniform(-12.0, 12.0)
    lv_cy, lv_cx = body_cy + rng.uniform(-30.0, 5.0), body_cx + rng.uniform(5.0, 35.0)
    values = {
        "blood": 1.0,
        "rv_blood": rng.uniform(0.85, 1.0),
        "myo": rng.uniform(0.15, 0.35),
        "tissue": rng.uniform(0.25, 0.5),
        "fat": rng.uniform(0.7, 1.1),
        "epi_fat": rng.uniform(0.5, 0.9),
        "lung": rng.uniform(0.02, 0.08),
    }
    blobs = _sample_blobs(rng, body_cy, body_cx, body_a, body_b, lv_cx, values)
    jitter_centre = rng.normal(0.0, 0.6, size=(num_slices, 2))
    jitter_radius = 1.0 + rng.normal(0.0, 0.02, size=num_slices)
    slice_shift = rng.normal(0.0, 3.0, size=(num_slices, 2))
    slice_gain = 1.0 + rng.normal(0.0, 0.08, size=num_slices)
    return _Patient(
        group=group, num_slices=num_slices, es_frame=es_frame, num_frames=num_frames,
        height_cm=round(float(rng.uniform(150.0, 195.0)), 1), weight_kg=round(float(rng.uniform(50.0, 110.0)), 1),
        spacing=(float(pixel), float(pixel), slice_spacing),
        body=(body_cy, body_cx, body_a, body_b, rng.uniform(-0.15, 0.15)),
        body_taper=rng.uniform(-0.2, 0.2), body_drift=tuple(rng.uniform(-15.0, 15.0, size=2)),
        fat_thickness=rng.uniform(6.0, 20.0), blobs=blobs,
        lv_centre=(lv_cy, lv_cx), lv_tilt=tuple(rng.uniform(-2.0, 2.0, size=2)),
        endo_radius=endo, wall=wall, lv_ratio=rng.uniform(0.85, 1.0), lv_angle=rng.uniform(0.0, np.pi),
        apex_scale=rng.uniform(0.35, 0.5), taper_power=rng.uniform(2.0, 3.0),
        rv_angle=np.pi + rng.uniform(-0.35, 0.35), rv_width=rv_width, rv_extent=rng.uniform(1.3, 1.7),
        rv_depth=rng.uniform(0.6, 0.8), rv_end=rng.uniform(0.6, 0.88), epicardial_fat=rng.uniform(1.5, 4.0),
        es_cavity=cavity, es_rv=rng.uniform(0.55, 0.75), es_shift=tuple(rng.uniform(-2.0, 2.0, size=2)),
        jitter_centre=jitter_centre, jitter_radius=jitter_radius, slice_shift=slice_shift, slice_gain=slice_gain,
        values=values, scale=rng.uniform(200.0, 900.0), noise=rng.uniform(0.02, 0.06),
        bias=tuple(rng.normal(0.0, 0.12, size=6)), texture_seed=int(rng.integers(2**31)),
    )


def _sample_blobs(rng, body_cy, body_cx, body_a, body_b, lv_cx, values) -> tuple[tuple[float, ...], ...]:
    """Lungs, liver, spine, aorta and a few random organs as z-dependent ellipses.

    Each blob: (cy, cx, a, b, angle, value, z centre, z half-extent), z in [0, 1] from
    base to apex; a blob's semi-axes shrink to zero at ``|t - z centre| = z half-extent``.
    """
    lung_value = values["lung"]
    blobs = [
        # lungs either side of the heart, fading towards the apex (the diaphragm)
        (body_cy + body_b * rng.uniform(-0.1, 0.2), body_cx - body_a * rng.uniform(0.5, 0.62),
         body_a * rng.uniform(0.18, 0.28), body_b * rng.uniform(0.4, 0.6), rng.uniform(-0.3, 0.3),
         lung_value, 0.0, rng.uniform(1.1, 1.5)),
        (body_cy + body_b * rng.uniform(0.0, 0.3), lv_cx + rng.uniform(30.0, 45.0),
         body_a * rng.uniform(0.15, 0.22), body_b * rng.uniform(0.35, 0.5), rng.uniform(-0.3, 0.3),
         lung_value, 0.0, rng.uniform(1.05, 1.4)),
        # liver rising from below at apical slices (image left, posterior)
        (body_cy + body_b * rng.uniform(0.1, 0.4), body_cx - body_a * rng.uniform(0.3, 0.5),
         body_a * rng.uniform(0.35, 0.5), body_b * rng.uniform(0.35, 0.5), rng.uniform(-0.5, 0.5),
         rng.uniform(0.28, 0.45), 1.2, rng.uniform(0.5, 0.9)),
        # vertebral body and descending aorta, through every slice
        (body_cy + body_b * rng.uniform(0.7, 0.8), body_cx + rng.uniform(-5.0, 5.0),
         rng.uniform(15.0, 20.0), rng.uniform(13.0, 17.0), 0.0, rng.uniform(0.3, 0.5), 0.5, 5.0),
        (body_cy + body_b * rng.uniform(0.45, 0.6), body_cx + rng.uniform(12.0, 25.0),
         rng.uniform(9.0, 13.0), rng.uniform(9.0, 13.0), 0.0, rng.uniform(0.8, 1.0), 0.5, 5.0),
    ]
    # organs and vessels cut by a few slices only (stomach, bowel, great vessels, ...)
    for _ in range(int(rng.integers(2, 6))):
        blobs.append(
            (body_cy + body_b * rng.uniform(-0.6, 0.6), body_cx + body_a * rng.uniform(-0.6, 0.6),
             rng.uniform(8.0, 30.0), rng.uniform(8.0, 30.0), rng.uniform(0.0, np.pi),
             rng.uniform(0.15, 0.9), rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.6))
        )
    return tuple(tuple(float(v) for v in blob) for blob in blobs)


# --------------------------------------------------------------------------- rendering
def _heart(spec: _Patient, phase: str, t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-slice heart geometry (each value (D,), mm) of one phase at slice positions ``t`` in [0, 1]."""
    taper = np.sqrt(np.clip(1.0 - (1.0 - spec.apex_scale**2) * t**spec.taper_power, 0.0, 1.0))
    epi = (spec.endo_radius + spec.wall) * taper * spec.jitter_radius
    endo = np.maximum(epi - spec.wall, 0.0)
    rv_width = spec.rv_width * np.clip(1.0 - t / spec.rv_end, 0.0, 1.0) ** 0.7
    shift = np.zeros(2)
    if phase == "ES":
        # The myocardium keeps its area while the cavity shrinks, so the wall thickens.
        muscle = epi**2 - endo**2
        endo = endo * spec.es_cavity
        epi = np.sqrt(endo**2 + muscle)
        rv_width = rv_width * spec.es_rv
        shift = np.asarray(spec.es_shift)
    z = np.arange(t.size)
    cy = spec.lv_centre[0] + spec.lv_tilt[0] * z + spec.jitter_centre[:, 0] + shift[0]
    cx = spec.lv_centre[1] + spec.lv_tilt[1] * z + spec.jitter_centre[:, 1] + shift[1]
    # RV: an ellipse centred on the septal side whose part outside the LV is the crescent.
    outer = epi + rv_width
    rv_a = spec.rv_depth * outer
    rv_distance = outer - rv_a
    return {
        "cy": cy, "cx": cx, "endo": endo, "epi": epi,
        "rv_cy": cy + rv_distance * np.sin(spec.rv_angle), "rv_cx": cx + rv_distance * np.cos(spec.rv_angle),
        "rv_a": np.where(rv_width > 0, rv_a, 0.0), "rv_b": np.where(rv_width > 0, spec.rv_extent * epi, 0.0),
    }


def _render(
    spec: _Patient, phase: str, image_size: int, noise_rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Image (int16) and labels (uint8), both (S, S, D), of one phase of a patient."""
    pixel = spec.spacing[0]
    axis = (np.arange(image_size, dtype=np.float32) - (image_size - 1) / 2) * np.float32(pixel)
    # Scanner grids (S, 1, 1) / (1, S, 1), and anatomy grids (S, 1, D) / (1, S, D) in
    # which each slice sees the body shifted by its own breath-hold offset.
    fixed_y, fixed_x = axis[:, None, None], axis[None, :, None]
    shift = spec.slice_shift.astype(np.float32)
    y, x = fixed_y - shift[:, 0], fixed_x - shift[:, 1]
    t = np.linspace(0.0, 1.0, spec.num_slices)
    image = np.zeros((image_size, image_size, spec.num_slices), dtype=np.float32)
    _paint_body(image, spec, y, x, t)
    labels = _paint_heart(image, spec, phase, y, x, t)
    return _acquire(image, spec, fixed_y, fixed_x, t, noise_rng), labels


def _paint_body(image: np.ndarray, spec: _Patient, y, x, t: np.ndarray) -> None:
    """Body with its subcutaneous fat ring, then lungs and organs, into ``image`` (S, S, D)."""
    pixel = spec.spacing[0]
    cy, cx, a, b, angle = spec.body
    along = (t - 0.5).astype(np.float32)
    cy, cx = cy + spec.body_drift[0] * along, cx + spec.body_drift[1] * along
    a, b = a * (1.0 + spec.body_taper * along), b * (1.0 + spec.body_taper * along)
    paint(image, ellipse_distance(y, x, cy, cx, a, b, angle), spec.values["fat"], pixel)
    inner = ellipse_distance(y, x, cy, cx, a - spec.fat_thickness, b - spec.fat_thickness, angle)
    paint(image, inner, spec.values["tissue"], pixel)
    for bcy, bcx, ba, bb, bangle, value, zc, zext in spec.blobs:
        profile = np.sqrt(np.clip(1.0 - ((t - zc) / zext) ** 2, 0.0, 1.0)).astype(np.float32)
        paint(image, ellipse_distance(y, x, bcy, bcx, ba * profile, bb * profile, bangle), value, pixel)


def _paint_heart(image: np.ndarray, spec: _Patient, phase: str, y, x, t: np.ndarray) -> np.ndarray:
    """Paint the heart of one phase into ``image``; return its labels (S, S, D) uint8."""
    pixel, values = spec.spacing[0], spec.values
    heart = _heart(spec, phase, t)
    h = {key: value.astype(np.float32) for key, value in heart.items()}
    epi_d = ellipse_distance(y, x, h["cy"], h["cx"], h["epi"], h["epi"] * spec.lv_ratio, spec.lv_angle)
    endo_d = ellipse_distance(y, x, h["cy"], h["cx"], h["endo"], h["endo"] * spec.lv_ratio, spec.lv_angle)
    rv_d = ellipse_distance(y, x, h["rv_cy"], h["rv_cx"], h["rv_a"], h["rv_b"], spec.rv_angle)
    paint(image, np.minimum(epi_d, rv_d) - np.float32(spec.epicardial_fat), values["epi_fat"], pixel)
    paint(image, rv_d - np.float32(2.5), values["myo"], pixel)  # thin RV free wall, unlabelled as in ACDC
    paint(image, rv_d, values["rv_blood"], pixel)
    paint(image, epi_d, values["myo"], pixel)
    paint(image, endo_d, values["blood"], pixel)
    paint(image, _papillary_distance(y, x, heart, spec), values["myo"], pixel)
    lv = endo_d < 0
    myo = (epi_d < 0) & ~lv
    rv = (rv_d < 0) & (epi_d >= 0)
    return (3 * lv + 2 * myo + 1 * rv).astype(np.uint8)


def _acquire(image: np.ndarray, spec: _Patient, y, x, t: np.ndarray, noise_rng: np.random.Generator) -> np.ndarray:
    """Tissue signal (S, S, D) -> int16 magnitude image: bias field, texture, slice gain, Rician noise."""
    size, depth = image.shape[0], image.shape[2]
    bias = _bias_field(spec, y, x, t, size * spec.spacing[0] / 2)
    signal = image * bias * _texture(spec, size, depth, spec.spacing[0]) * spec.slice_gain.astype(np.float32)
    sigma = np.float32(spec.noise)
    real = signal + sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
    imaginary = sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
    magnitude = np.sqrt(real**2 + imaginary**2) * np.float32(spec.scale)
    return np.clip(np.round(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)


def _papillary_distance(y, x, heart: dict[str, np.ndarray], spec: _Patient) -> np.ndarray:
    """Two papillary muscles in the LV cavity (image only; ACDC labels them LV)."""
    distances = []
    for offset in (0.7, -0.5):
        angle = spec.rv_angle + np.pi + offset
        reach = 0.6 * heart["endo"]
        cy = (heart["cy"] + reach * np.sin(angle)).astype(np.float32)
        cx = (heart["cx"] + reach * np.cos(angle)).astype(np.float32)
        radius = (0.18 * heart["endo"]).astype(np.float32)
        distances.append(ellipse_distance(y, x, cy, cx, radius, radius, 0.0))
    return np.minimum(*distances)


def _bias_field(spec: _Patient, y, x, t, half_fov: float) -> np.ndarray:
    """A smooth multiplicative coil-sensitivity field: exp of a quadratic in (y, x) plus a z slope."""
    yn, xn = y / np.float32(half_fov), x / np.float32(half_fov)
    zn = (2.0 * t - 1.0).astype(np.float32)
    c = np.asarray(spec.bias, dtype=np.float32)
    return np.exp(c[0] * xn + c[1] * yn + c[2] * xn**2 + c[3] * yn**2 + c[4] * xn * yn + c[5] * zn)


def _texture(spec: _Patient, size: int, depth: int, pixel: float) -> np.ndarray:
    """Tissue heterogeneity: smoothed noise of a few mm, +-5 % (shared by ED and ES of a patient)."""
    rng = np.random.default_rng(spec.texture_seed)
    field = ndimage.gaussian_filter(rng.standard_normal((size, size, depth), dtype=np.float32),
                                    sigma=(6.0 / pixel, 6.0 / pixel, 0.0))
    spread = field.std()
    return 1.0 + np.float32(0.05) * field / (spread if spread > 0 else 1.0)


# --------------------------------------------------------------------------- writing
def _write_patient(folder: Path, name: str, spec: _Patient, image_size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "Info.cfg", _info_cfg(spec))
    affine = centred_affine(spec.spacing, image_size)
    for phase, frame in (("ED", _ED_FRAME), ("ES", spec.es_frame)):
        noise_rng = np.random.default_rng(derive_seed(seed, name, phase, "noise"))
        image, labels = _render(spec, phase, image_size, noise_rng)
        scribble = scribble_from_mask(labels, _NUM_CLASSES, ignore_index=_IGNORE_INDEX,
                                      seed=derive_seed(seed, name, phase, "scribble"))
        stem = folder / f"{name}_frame{frame:02d}"
        write_nifti(Path(f"{stem}.nii.gz"), image, affine)
        write_nifti(Path(f"{stem}_gt.nii.gz"), labels, affine)
        write_nifti(Path(f"{stem}_scribble.nii.gz"), scribble, affine)


def _info_cfg(spec: _Patient) -> str:
    return (
        f"ED: {_ED_FRAME}\nES: {spec.es_frame}\nGroup: {spec.group}\nHeight: {spec.height_cm:.1f}\n"
        f"NbFrame: {spec.num_frames}\nWeight: {spec.weight_kg:.1f}\n"
    )
