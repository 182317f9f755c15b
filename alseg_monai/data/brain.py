"""A synthetic longitudinal brain MR dataset (FLAIR-like) with oedema, tumour core and
ventricle masks, as a decathlon-style datalist.

The third phantom differs from the cardiac cine-MR and the abdominal CT phantoms in organ,
modality and in what slice selection faces: MR in arbitrary units whose scale changes from
scan to scan (scanner gain, bias field), a lesion of patient-specific position and size in
one hemisphere that only part of each stack shows, ventricles in the middle slices only,
and two scans per patient, a baseline and a follow-up in which the lesion has changed and
the head has moved. As with the cardiac phantom's ED and ES frames, the encoder's patient
grouping thus joins two different volumes of one patient. Per patient, drawn from a seed:

* head: scalp, skull (outer table, diploe, inner table; dark on FLAIR) and a thin layer of
  suppressed CSF around the brain, all narrowing towards the vertex and the skull base;
* brain: white matter, a cortical grey-matter ribbon brighter than it, sulci of suppressed
  CSF whose course wanders from slice to slice, the interhemispheric fissure (interrupted
  at the level of the corpus callosum) and deep grey nuclei beside the ventricles;
* lateral ventricles (label 3): frontal horns, bodies and occipital horns of their own
  sizes and heights, so that their shape changes over the stack and the top and bottom
  slices show none; a bright periventricular rim;
* tumour core (label 2; a necrotic centre in half of the patients) and lobulated oedema
  around it (label 1, within the parenchyma, sparing sulci and ventricles), both in one
  hemisphere, with slices above or below it free of both; its mass pushes the midline
  away and compresses the ventricle on its side;
* acquisition: a slab of 10-16 axial slices of 5-7 mm with 1.8-2 mm pixels placed from
  below the ventricles to above them, scanner gain, tissue contrasts and noise level.

Per scan: the follow-up scales the core and the oedema margin by independent factors
(0.7-1.4 and 0.6-1.6: regression after treatment or progression), and each scan places the
head with its own in-plane shift and rotation and slab offset, multiplies the image by its
own gain and smooth bias field and adds its own tissue texture and Rician noise.

Written files (patients ``patient001`` ...; one folder per patient, as in BraTS, so that a
replaced phantom's files are removed with its folders)::

    root/phantom.json                                     generator parameters (reuse / refusal)
    root/dataset.json                                     {"labels": {"0": "background", "1": "oedema",
                                                           "2": "tumour_core", "3": "ventricles"},
                                                           "training": [{"image", "label", "patient"}]}
    root/patientNNN/patientNNN_baseline.nii.gz            int16 FLAIR-like (S, S, D), RAS
    root/patientNNN/patientNNN_baseline_seg.nii.gz        uint8 labels 0-3
    root/patientNNN/patientNNN_followup[_seg].nii.gz      the same for the follow-up scan

read by the ``datalist`` reader (bundle config ``configs/data/brain_phantom.json``) as two
volumes, ``patientNNN_baseline`` and ``patientNNN_followup``, of patient ``patientNNN``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..utils import atomic_write_json, derive_seed
from ..utils.progress import bar_disable
from .synthetic import GeneratedDataset, centred_affine, ellipse_distance, paint, write_nifti

__all__ = ["make_brain_phantom"]

logger = logging.getLogger(__name__)

BRAIN_LABELS = {"0": "background", "1": "oedema", "2": "tumour_core", "3": "ventricles"}
SCANS = ("baseline", "followup")
_DATASET = GeneratedDataset("alseg_monai.data.make_brain_phantom", version=1)
_MIN_IMAGE_SIZE = 32
_MIN_SLICES = 8
# Slab length (mm) the slice thickness is fitted to: long enough to reach past the ventricles at both ends
# with few slices, short enough to stay within the brain with many.
_SLAB_LENGTH = (70.0, 110.0)
# Heights (mm, 0 at the ventricles' centre) below and above which no ventricle part reaches (see _sample_ventricles).
_VENTRICLE_RANGE = (-20.0, 29.0)
_MAX_SHIFT_Z = 3.0  # largest slab offset of the follow-up against the baseline (mm)
_MAX_INT16 = 32767


def make_brain_phantom(
    root: str | Path,
    num_patients: int = 24,
    image_size: int = 128,
    seed: int = 0,
    slices: tuple[int, int] = (10, 16),
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write the synthetic longitudinal brain MR datalist under ``root`` (see the module doc).

    Args:
        root: output folder; created if missing.
        num_patients: number of patients (two volumes each), >= 1.
        image_size: in-plane size S of every volume, (S, S, D), >= 32.
        seed: dataset seed; the same seed gives byte-identical files.
        slices: (min, max) number of axial slices D per patient (both scans), min >= 8.
        overwrite: allow writing into a non-empty folder that is not a phantom.
        progress: show a progress bar over patients.

    Returns:
        ``root`` (reused as it is when it already holds this phantom with these parameters;
        a phantom of other parameters, or an interrupted one, is replaced).

    Raises:
        ConfigError: invalid parameters, ``root`` is a file, or ``root`` is a non-empty
            folder without a phantom and ``overwrite`` is False.
    """
    params = _check_parameters(num_patients, image_size, seed, slices)
    root = Path(root)

    def files(name: str, info: dict) -> list[Path]:
        stems = [root / name / f"{name}_{scan}" for scan in SCANS]
        return [root / "dataset.json", *(Path(f"{stem}{suffix}.nii.gz") for stem in stems for suffix in ("", "_seg"))]

    if _DATASET.is_complete(root, params, files):
        logger.info("reusing the brain phantom at %s (%d patients)", root, num_patients)
        return root
    start = time.perf_counter()
    names = [f"patient{number:03d}" for number in range(1, num_patients + 1)]
    _DATASET.start(root, params, names, overwrite)
    info, items = {}, []
    for number, name in enumerate(tqdm(names, desc="brain phantom", unit="patient", disable=bar_disable(progress)), 1):
        spec = _sample_patient(np.random.default_rng(derive_seed(seed, "brain", number)), image_size, params["slices"])
        affine = centred_affine(spec["spacing"], image_size)
        for scan_spec, scan in zip(spec["scans"], SCANS):
            noise_rng = np.random.default_rng(derive_seed(seed, "brain", number, scan, "noise"))
            image, label = _render(spec, scan_spec, image_size, noise_rng)
            write_nifti(root / name / f"{name}_{scan}.nii.gz", image, affine)
            write_nifti(root / name / f"{name}_{scan}_seg.nii.gz", label, affine)
            items.append({"image": f"{name}/{name}_{scan}.nii.gz", "label": f"{name}/{name}_{scan}_seg.nii.gz",
                          "patient": name})
        follow_up = spec["scans"][1]
        info[name] = {"num_slices": spec["depth"], "tumour_side": "right" if spec["tumour"]["side"] > 0 else "left",
                      "core_change": round(follow_up["core"], 3), "oedema_change": round(follow_up["oedema"], 3)}
    atomic_write_json(root / "dataset.json", {"name": "brain_phantom", "modality": {"0": "FLAIR"},
                                              "labels": BRAIN_LABELS, "training": items})
    _DATASET.finish(root, params, names, info)
    logger.info("wrote a %d-patient brain phantom to %s in %.1f s", num_patients, root, time.perf_counter() - start)
    return root


def _check_parameters(num_patients, image_size, seed, slices) -> dict:
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
            "slices": [int(low), int(high)]}


# --- sampling: lengths in mm; head coordinates x to the right, y anterior, z superior, 0 at the ventricles ---


def _sample_patient(rng: np.random.Generator, image_size: int, slices: list[int]) -> dict:
    """Anatomy, lesion, contrasts and the two scans of one patient."""
    depth = int(rng.integers(slices[0], slices[1] + 1))
    # 5-6.5 mm as in clinical 2D FLAIR, thicker or thinner where the slab would not fit _SLAB_LENGTH
    thickness = float(np.clip(rng.uniform(5.0, 6.5), _SLAB_LENGTH[0] / depth, _SLAB_LENGTH[1] / depth))
    pixel = float(rng.uniform(230.0, 260.0) / image_size)  # field of view: the head, moved, fits
    brain = {"a": rng.uniform(56.0, 66.0), "b": rng.uniform(70.0, 80.0),  # half-width (x), half-length (y)
             "top": rng.uniform(78.0, 90.0), "widest": rng.uniform(-8.0, 4.0), "base": rng.uniform(70.0, 85.0)}
    slab_top = _sample_slab_top(rng, depth * thickness, thickness, brain["top"])
    spec = {
        "depth": depth, "spacing": (pixel, pixel, thickness), "thickness": thickness,
        "slab_bottom": slab_top - depth * thickness, "brain": brain,
        "layers": {"csf": rng.uniform(1.5, 3.5), "skull": rng.uniform(5.0, 8.0), "scalp": rng.uniform(4.0, 7.0)},
        "cortex": _sample_cortex(rng),
        "ventricles": _sample_ventricles(rng),
        "tissue": {"gm": rng.uniform(1.12, 1.3), "deep": rng.uniform(1.05, 1.18), "csf": rng.uniform(0.08, 0.2),
                   "scalp": rng.uniform(0.8, 1.2), "bone": rng.uniform(0.02, 0.06), "diploe": rng.uniform(0.3, 0.6),
                   "rim": rng.uniform(1.15, 1.35), "oedema": rng.uniform(1.6, 2.1), "core": rng.uniform(1.15, 1.4),
                   "necrosis": rng.uniform(0.5, 0.9)},  # relative to white matter = 1
        "gain": rng.uniform(300.0, 800.0), "noise": rng.uniform(0.02, 0.05),
    }
    spec["tumour"] = _sample_tumour(rng)
    spec["scans"] = _sample_scans(rng, len(spec["tumour"]["lobes"]) + len(spec["tumour"]["oedema_lobes"]))
    spec["tumour"]["centre"] = _place_tumour(rng, spec)
    return spec


def _sample_slab_top(rng: np.random.Generator, length: float, thickness: float, brain_top: float) -> float:
    """Height of the slab's upper end: the first and last slice centres of both scans lie beyond the
    ventricles (so that the stack ends without them), and the top slice within the brain."""
    margin = thickness / 2 + _MAX_SHIFT_Z + 1.0
    low = _VENTRICLE_RANGE[1] + margin
    high = min(length + _VENTRICLE_RANGE[0] - margin, brain_top - 12.0)
    return float(rng.uniform(low, max(low, high)))


def _sample_cortex(rng: np.random.Generator) -> dict:
    return {
        "count": int(rng.integers(22, 34)), "half_width": rng.uniform(0.8, 1.3), "depth": rng.uniform(10.0, 18.0),
        "thickness": rng.uniform(2.5, 3.5),
        # phase terms (order, amplitude, phase, change per mm of height): the sulci wander between slices
        "wander": [(order, rng.uniform(0.3, 1.2) / order, rng.uniform(0.0, 2 * np.pi), rng.uniform(-0.05, 0.05))
                   for order in (1, 2, 3)],
        "bend": (rng.uniform(0.3, 0.8), rng.uniform(0.0, 2 * np.pi)),  # sulci curve on their way in
        "depth_wave": (int(rng.integers(3, 8)), rng.uniform(0.0, 2 * np.pi), rng.uniform(-0.05, 0.05)),
        # half-width; the corpus callosum's half-length, centre (y) and height range that interrupt it
        "fissure": (rng.uniform(0.8, 1.3), rng.uniform(28.0, 36.0), rng.uniform(-8.0, -3.0), rng.uniform(8.0, 16.0),
                    rng.uniform(14.0, 20.0)),
        "deep": [(rng.uniform(13.0, 15.0), rng.uniform(10.0, 16.0), rng.uniform(4.0, 6.0), rng.uniform(7.0, 10.0),
                  rng.uniform(-4.0, 4.0), rng.uniform(12.0, 15.0)),  # caudate head
                 (rng.uniform(9.0, 12.0), rng.uniform(-8.0, -2.0), rng.uniform(7.0, 9.0), rng.uniform(10.0, 13.0),
                  rng.uniform(-12.0, -6.0), rng.uniform(10.0, 13.0))],  # thalamus
    }


def _sample_ventricles(rng: np.random.Generator) -> list[dict]:
    """Per side (x sign), parts (x offset, y, half-width, half-length, tilt, z centre, z half-range) whose
    heights stay within _VENTRICLE_RANGE; one size for both sides (age), a small asymmetry per side."""
    size = rng.uniform(0.7, 1.4)
    sides = []
    for side in (-1.0, 1.0):
        q = size * rng.uniform(0.85, 1.15)
        sides.append({"side": side, "parts": [
            (rng.uniform(5.5, 7.5), rng.uniform(14.0, 20.0), rng.uniform(4.0, 6.0) * q, rng.uniform(10.0, 14.0) * q,
             rng.uniform(0.2, 0.4), rng.uniform(-2.0, 6.0), rng.uniform(12.0, 16.0)),  # frontal horn
            (rng.uniform(6.0, 8.5), rng.uniform(-2.0, 4.0), rng.uniform(3.5, 5.5) * q, rng.uniform(13.0, 17.0) * q,
             rng.uniform(0.0, 0.15), rng.uniform(6.0, 14.0), rng.uniform(11.0, 15.0)),  # body
            (rng.uniform(13.0, 18.0), -rng.uniform(20.0, 28.0), rng.uniform(5.0, 8.0) * q, rng.uniform(10.0, 14.0) * q,
             -rng.uniform(0.25, 0.45), rng.uniform(-6.0, 0.0), rng.uniform(10.0, 14.0)),  # occipital horn, trigone
        ]})
    return sides


def _sample_tumour(rng: np.random.Generator) -> dict:
    return {
        "side": float(rng.choice([-1.0, 1.0])),
        "radii": (rng.uniform(7.0, 16.0), rng.uniform(7.0, 16.0), rng.uniform(6.0, 13.0)),  # x, y, z
        "angle": rng.uniform(0.0, np.pi), "margin": rng.uniform(5.0, 13.0),
        "lobes": [(order, rng.uniform(0.0, 0.12), rng.uniform(0.0, 2 * np.pi)) for order in (2, 3, 4)],
        "oedema_lobes": [(order, rng.uniform(0.04, 0.15), rng.uniform(0.0, 2 * np.pi)) for order in (3, 4, 5, 6)],
        "necrosis": rng.uniform(0.35, 0.6) if rng.uniform() < 0.5 else 0.0,
        # in-plane position: fraction of the brain's radius, angle from the lateral direction (frontal > 0)
        "offset": (rng.uniform(0.4, 0.62), rng.uniform(-1.0, 1.0)),
    }


def _sample_scans(rng: np.random.Generator, num_lobes: int) -> list[dict]:
    """Pose, lesion change and acquisition of the baseline and the follow-up scan."""
    angle, shift = rng.uniform(-0.1, 0.1), rng.uniform(-6.0, 6.0, size=2)
    scans = []
    for follow_up in (False, True):
        if follow_up:  # the head is placed again in the coil
            angle, shift = angle + rng.uniform(-0.1, 0.1), shift + rng.uniform(-5.0, 5.0, size=2)
        scans.append({
            "angle": float(angle), "shift": tuple(float(s) for s in shift),
            "dz": float(rng.uniform(-_MAX_SHIFT_Z, _MAX_SHIFT_Z)) if follow_up else 0.0,
            "core": float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))) if follow_up else 1.0,
            "oedema": float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if follow_up else 1.0,
            "drift": rng.normal(0.0, 0.3, size=num_lobes) if follow_up else np.zeros(num_lobes),
            "gain": rng.uniform(0.9, 1.1), "bias": rng.normal(0.0, 0.08, size=6),
        })
    return scans


def _oedema_reach(spec: dict) -> float:
    """The largest height (mm) of the oedema above or below the tumour centre in either scan."""
    tumour = spec["tumour"]
    return max(tumour["radii"][2] * scan["core"] + tumour["margin"] * scan["oedema"] for scan in spec["scans"])


def _place_tumour(rng: np.random.Generator, spec: dict) -> tuple[float, float, float]:
    """Centre (x, y, z) of the tumour: in its hemisphere, and at a height that leaves the slab's top or
    bottom slice (of both scans, whatever their offset) free of oedema and core."""
    brain, tumour, thickness = spec["brain"], spec["tumour"], spec["thickness"]
    bottom, length = spec["slab_bottom"], spec["depth"] * spec["thickness"]
    clearance = thickness + _MAX_SHIFT_Z + _oedema_reach(spec)
    inner = (max(bottom + 0.15 * length, -25.0), min(bottom + 0.85 * length, brain["top"] - 30.0))
    ranges = [(inner[0], min(inner[1], bottom + length - clearance)),  # free slices above it
              (max(inner[0], bottom + clearance), inner[1])]  # free slices below it
    feasible = [r for r in ranges if r[0] <= r[1]]
    low, high = feasible[int(rng.integers(len(feasible)))] if feasible else max(ranges, key=lambda r: r[1] - r[0])
    z = float(rng.uniform(low, high)) if low <= high else (low + high) / 2
    size = float(_section(np.float32(z), brain))
    radius, angle = tumour["offset"]
    return (tumour["side"] * radius * np.cos(angle) * brain["a"] * size, radius * np.sin(angle) * brain["b"] * size,
            z)


# --- rendering ---


def _section(z: np.ndarray, brain: dict, offset: float = 0.0) -> np.ndarray:
    """Relative in-plane size of the brain (``offset`` 0) or of a layer ``offset`` mm outside it at heights
    ``z``: an ellipsoid widest at ``brain["widest"]``, reaching to its top and down to its base."""
    height = np.asarray(z, dtype=np.float32) - np.float32(brain["widest"])
    reach = np.where(height > 0, brain["top"] - brain["widest"] + offset, brain["base"] + offset)
    return np.sqrt(np.clip(1.0 - (height / reach) ** 2, 0.0, 1.0)).astype(np.float32)


def _blob(z: np.ndarray, centre: float, half: float) -> np.ndarray:
    return np.sqrt(np.clip(1.0 - ((z - centre) / half) ** 2, 0.0, 1.0)).astype(np.float32)


def _render(spec: dict, scan: dict, image_size: int, noise_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image (int16) and labels (uint8), both (S, S, D), of one scan."""
    pixel = spec["spacing"][0]
    axis = (np.arange(image_size, dtype=np.float32) - (image_size - 1) / 2) * np.float32(pixel)
    # The scan's pose maps the image grid (axis 0 to the right, axis 1 anterior) to head coordinates.
    gx, gy = axis[:, None, None] - np.float32(scan["shift"][0]), axis[None, :, None] - np.float32(scan["shift"][1])
    cos, sin = np.float32(np.cos(scan["angle"])), np.float32(np.sin(scan["angle"]))
    x, y = cos * gx + sin * gy, cos * gy - sin * gx
    z = (spec["slab_bottom"] + (np.arange(spec["depth"]) + 0.5) * spec["thickness"] + scan["dz"]).astype(np.float32)
    image = np.zeros((image_size, image_size, spec["depth"]), dtype=np.float32)
    tumour = spec["tumour"]
    reach = tumour["radii"][2] * scan["core"] + tumour["margin"] * scan["oedema"]
    # Mass effect: the midline moves away from the tumour near its height, by up to 6 mm.
    push = -tumour["side"] * min(6.0, 0.3 * np.mean(tumour["radii"][:2]) * scan["core"])
    midline = (push * _blob(z, tumour["centre"][2], reach + 10.0)).astype(np.float32)

    brain_d = _draw_head(image, x, y, z, spec, pixel)
    csf_d = _draw_cortex(image, x, y, z, spec, brain_d, midline, pixel)
    ventricles_d = _draw_ventricles(image, x, y, z, spec, scan, midline, pixel)
    oedema_d, core_d = _draw_tumour(image, x, y, z, spec, scan, (brain_d, csf_d, ventricles_d), midline, pixel)
    label = np.zeros(image.shape, dtype=np.uint8)
    label[oedema_d < 0] = 1
    label[ventricles_d < 0] = 3
    label[core_d < 0] = 2
    return _acquire(image, spec, scan, pixel, noise_rng), label


def _draw_head(image, x, y, z, spec: dict, pixel: float) -> np.ndarray:
    """Paint scalp, skull, the CSF around the brain and white matter; return the brain's distance."""
    brain, layers, tissue = spec["brain"], spec["layers"], spec["tissue"]
    csf, skull = layers["csf"], layers["skull"]
    distance = None
    for offset, value in ((csf + skull + layers["scalp"], tissue["scalp"]), (csf + skull, tissue["bone"]),
                          (csf + 0.65 * skull, tissue["diploe"]), (csf + 0.35 * skull, tissue["bone"]),
                          (csf, tissue["csf"]), (0.0, 1.0)):
        size = _section(z, brain, offset)
        distance = ellipse_distance(y, x, 0.0, 0.0, (brain["a"] + offset) * size, (brain["b"] + offset) * size, 0.0)
        paint(image, distance, value, pixel)
    return distance


def _draw_cortex(image, x, y, z, spec: dict, brain_d, midline, pixel: float) -> np.ndarray:
    """Paint the cortical ribbon, the sulci, the interhemispheric fissure and the deep grey nuclei;
    return the distance to the CSF of sulci and fissure."""
    cortex, tissue, brain = spec["cortex"], spec["tissue"], spec["brain"]
    size = np.maximum(_section(z, brain), np.float32(1e-3))
    # angle around the brain's ellipse, so that the sulci are spaced evenly along its outline
    phi = np.arctan2(y / (brain["b"] * size), x / (brain["a"] * size))
    phase = cortex["count"] * phi
    for order, amplitude, offset, rate in cortex["wander"]:
        phase = phase + amplitude * np.sin(order * phi + offset + rate * z)
    depth = -brain_d
    bend, offset = cortex["bend"]
    phase = phase + bend * np.sin(2 * phi + offset) * np.clip(depth, 0.0, 30.0) / 10.0
    # distance (mm) across the nearest sulcus, from the angle to its centre line at this radius
    across = np.arccos(np.cos(phase)) / cortex["count"] * np.sqrt(x * x + y * y)
    order, offset, rate = cortex["depth_wave"]
    reach = cortex["depth"] * (0.55 + 0.45 * np.cos(order * phi + offset + rate * z))
    half, thick = cortex["half_width"], cortex["thickness"]
    ribbon = np.minimum(depth - thick, np.maximum(across - half - thick, depth - reach - thick))
    paint(image, np.maximum(ribbon, brain_d), tissue["gm"], pixel)
    sulci = np.maximum.reduce([across - half, depth - reach, brain_d])
    width, gap, gap_y, gap_z, gap_half = cortex["fissure"]
    # the corpus callosum joins the hemispheres at these heights: no fissure above it
    extent = _blob(z, gap_z, gap_half)
    callosum = np.where(extent > 0, gap * extent - np.abs(y - gap_y), -np.inf).astype(np.float32)
    off_midline = np.abs(x - midline)
    paint(image, np.maximum.reduce([off_midline - width - thick, callosum, brain_d]), tissue["gm"], pixel)
    fissure = np.maximum.reduce([off_midline - width, callosum, brain_d])
    for side in (-1.0, 1.0):
        for across_x, along, half_x, half_y, centre, extent in cortex["deep"]:
            size = _blob(z, centre, extent)
            paint(image, ellipse_distance(y, x, along, side * across_x + midline, half_x * size, half_y * size, 0.0),
                  tissue["deep"], pixel)
    csf = np.minimum(sulci, fissure)
    paint(image, csf, tissue["csf"], pixel)
    return csf


def _draw_ventricles(image, x, y, z, spec: dict, scan: dict, midline, pixel: float) -> np.ndarray:
    """Paint the lateral ventricles and their bright rim; return their distance. The ventricle on the
    tumour's side is compressed by its mass."""
    tumour, tissue = spec["tumour"], spec["tissue"]
    squeeze = 1.0 - min(0.35, 0.02 * np.mean(tumour["radii"][:2]) * scan["core"])
    parts = []
    for ventricle in spec["ventricles"]:
        side = ventricle["side"]
        scale = squeeze if side == tumour["side"] else 1.0
        for across, along, half_x, half_y, tilt, centre, extent in ventricle["parts"]:
            size = scale * _blob(z, centre, extent)
            parts.append(ellipse_distance(y, x, along, side * across + midline, half_x * size, half_y * size,
                                          -side * tilt))
    distance = np.minimum.reduce(parts)
    paint(image, distance - 2.0, tissue["rim"], pixel)  # periventricular FLAIR hyperintensity
    paint(image, distance, tissue["csf"], pixel)
    return distance


def _lobulated(x, y, z, centre, radii, angle: float, lobes, drift) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoid whose slice outlines are made irregular by
    angular harmonics ``lobes`` (order, amplitude, phase), each phase shifted by ``drift``."""
    cx, cy, cz = centre
    across = np.sqrt(np.clip(1.0 - ((z - cz) / radii[2]) ** 2, 0.0, 1.0)).astype(np.float32)
    present = across > 0
    a, b = np.where(present, radii[0] * across, 1.0), np.where(present, radii[1] * across, 1.0)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = ((x - cx) * cos + (y - cy) * sin) / a, ((y - cy) * cos - (x - cx) * sin) / b
    phi = np.arctan2(v, u)
    scale = 1.0 + sum(amplitude * np.cos(order * phi + phase + shift)
                      for (order, amplitude, phase), shift in zip(lobes, drift))
    distance = (np.sqrt(u * u + v * v) / np.maximum(scale, 0.3) - 1.0) * np.sqrt(a * b)
    return np.where(present, distance, np.float32(np.inf)).astype(np.float32)


def _draw_tumour(image, x, y, z, spec: dict, scan: dict, tissues, midline,
                 pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Paint oedema, core and necrosis; return the distances of the oedema and core labels. Both stay in
    the tumour's hemisphere; oedema lies in the parenchyma only (it spares CSF), the core replaces whatever
    it grows into."""
    brain_d, csf_d, ventricles_d = tissues
    tumour, tissue = spec["tumour"], spec["tissue"]
    radii = [r * scan["core"] for r in tumour["radii"]]
    margin = tumour["margin"] * scan["oedema"]
    lobes, drift = len(tumour["lobes"]), scan["drift"]
    core = _lobulated(x, y, z, tumour["centre"], radii, tumour["angle"], tumour["lobes"], drift[:lobes])
    oedema = _lobulated(x, y, z, tumour["centre"], [r + margin for r in radii], tumour["angle"],
                        tumour["oedema_lobes"], drift[lobes:])
    hemisphere = tumour["side"] * (midline - x)  # negative on the tumour's side of the midline
    oedema = np.maximum.reduce([oedema, brain_d, hemisphere, -csf_d, -ventricles_d])
    core = np.maximum.reduce([core, brain_d, hemisphere])
    paint(image, oedema, tissue["oedema"], pixel)
    paint(image, core, tissue["core"], pixel)
    if tumour["necrosis"] > 0:
        necrosis = _lobulated(x, y, z, tumour["centre"], [r * tumour["necrosis"] for r in radii], tumour["angle"],
                              tumour["lobes"], drift[:lobes])
        paint(image, np.maximum(necrosis, core), tissue["necrosis"], pixel)
    return oedema, core


def _acquire(image: np.ndarray, spec: dict, scan: dict, pixel: float, noise_rng: np.random.Generator) -> np.ndarray:
    """The scan's magnitude image: tissue texture, gain, a smooth bias field and Rician noise, as int16."""
    shape = image.shape
    texture = ndimage.gaussian_filter(noise_rng.standard_normal(shape, dtype=np.float32),
                                      sigma=(2.0 / pixel, 2.0 / pixel, 0.0))
    image = image * (1.0 + 0.03 * texture / max(float(texture.std()), 1e-6))
    # bias field: a quadratic in image coordinates, fixed to the coil rather than the head
    u = np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    v = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)[None, :, None]
    w = np.linspace(-1.0, 1.0, shape[2], dtype=np.float32)[None, None, :]
    c = scan["bias"].astype(np.float32)
    bias = np.exp(c[0] * u + c[1] * v + c[2] * w + c[3] * u * u + c[4] * v * v + c[5] * u * v)
    gain = np.float32(spec["gain"] * scan["gain"])
    signal = image * bias * gain
    sigma = np.float32(spec["noise"]) * gain
    real = signal + sigma * noise_rng.standard_normal(shape, dtype=np.float32)
    imaginary = sigma * noise_rng.standard_normal(shape, dtype=np.float32)
    return np.clip(np.round(np.sqrt(real * real + imaginary * imaginary)), 0, _MAX_INT16).astype(np.int16)
