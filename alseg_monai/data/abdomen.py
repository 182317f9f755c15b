"""A synthetic abdominal CT dataset with liver masks, as a decathlon-style datalist.

The study of selection strategies (docs/study.md) must not rest on one phantom. This
second one differs from the cardiac cine-MR phantom where it matters for slice
selection: CT intensities in Hounsfield units (windowed like CHAOS), one volume per
patient (so the patient grouping of the encoder equals the volume grouping and is
dropped, as for CHAOS, MS-CMR and DAVIS), a single foreground class, and a stack in
which a third or more of the slices contain no liver at all (below its tip), while the
spleen, of nearly the liver's density, sits in the slices above. Per patient, drawn
from a seed:

* body: elliptic trunk with subcutaneous fat, muscle wall and visceral fat, widening
  downwards; lungs in the top slices; ribs around the upper abdomen; vertebral body,
  spinal canal, aorta and inferior vena cava in every slice;
* liver (label 1): a right lobe and a left lobe whose sizes follow their own
  cranio-caudal profiles from the dome to the tip, with a gallbladder (not liver) near
  its lower surface; the vena cava runs through its upper part (not liver);
* spleen, stomach (gas or fluid), kidneys, psoas muscles and bowel loops, each in its
  own range of slices;
* contrast phase per patient (native or portal venous) setting organ densities,
  tissue texture and Gaussian noise of 8-25 HU.

Written files (patients ``patient001`` ...)::

    root/phantom.json                          generator parameters (reuse / refusal)
    root/dataset.json                          {"labels": {"0": "background", "1": "liver"},
                                                "training": [{"image", "label", "patient"}]}
    root/imagesTr/patientNNN.nii.gz            int16 HU (S, S, D)
    root/labelsTr/patientNNN.nii.gz            uint8 liver mask

read by the ``datalist`` reader (bundle config ``configs/data/abdomen_phantom.json``).
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
from .synthetic import (
    GeneratedDataset,
    centred_affine,
    check_variability,
    ellipse_distance,
    paint,
    sample_with_centre,
    scale_about_centre,
    write_nifti,
)

__all__ = ["make_abdomen_phantom"]

logger = logging.getLogger(__name__)

# The CT window the bundle's data config uses for this phantom (centre, width in HU), as for CHAOS.
ABDOMEN_WINDOW = (40.0, 400.0)
_DATASET = GeneratedDataset("alseg_monai.data.make_abdomen_phantom", version=1)
_MIN_IMAGE_SIZE = 32
_AIR = -1000.0


def make_abdomen_phantom(
    root: str | Path,
    num_patients: int,
    image_size: int = 128,
    seed: int = 0,
    slices: tuple[int, int] = (24, 36),
    overwrite: bool = False,
    progress: bool = True,
    variability: float = 1.0,
) -> Path:
    """Write the synthetic abdominal CT datalist under ``root`` (see the module doc).

    Args:
        root: output folder; created if missing.
        num_patients: number of patients, >= 1.
        image_size: in-plane size S of every volume, (S, S, D), >= 32.
        seed: dataset seed; the same seed gives byte-identical files.
        slices: (min, max) number of axial slices D per patient, min >= 8.
        overwrite: allow writing into a non-empty folder that is not a phantom.
        progress: show a progress bar over patients.
        variability: scale of the differences between patients about their population
            centre (:func:`~.synthetic.scale_about_centre`): anatomy size and position,
            densities, noise; 1 is the phantom as it always was. The contrast phase, slice
            and bowel-loop counts stay as drawn.

    Returns:
        ``root`` (reused as it is when it already holds this phantom with these parameters).

    Raises:
        ConfigError: invalid parameters, ``root`` is a file, or ``root`` is a non-empty
            folder without a phantom and ``overwrite`` is False.
    """
    params = {**_check_parameters(num_patients, image_size, seed, slices), **check_variability(variability)}
    root = Path(root)

    def files(name: str, info: dict) -> list[Path]:
        return [root / "dataset.json", root / "imagesTr" / f"{name}.nii.gz", root / "labelsTr" / f"{name}.nii.gz"]

    if _DATASET.is_complete(root, params, files):
        logger.info("reusing the abdomen phantom at %s (%d patients)", root, num_patients)
        return root
    start = time.perf_counter()
    names = [f"patient{number:03d}" for number in range(1, num_patients + 1)]
    _DATASET.start(root, params, names, overwrite)
    info, items = {}, []
    bar = tqdm(names, desc="abdomen phantom", unit="patient", disable=bar_disable(progress))
    for number, name in enumerate(bar, 1):
        rng = np.random.default_rng(derive_seed(seed, "abdomen", number))
        spec, centre = sample_with_centre(lambda r: _sample_patient(r, image_size, params["slices"]), rng, variability)
        if centre is not None:
            spec = scale_about_centre(spec, centre, variability)
        image, label = _render(spec, image_size, np.random.default_rng(derive_seed(seed, "abdomen", number, "noise")))
        affine = centred_affine(spec["spacing"], image_size)
        write_nifti(root / "imagesTr" / f"{name}.nii.gz", image, affine)
        write_nifti(root / "labelsTr" / f"{name}.nii.gz", label, affine)
        items.append({"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz", "patient": name})
        info[name] = {"num_slices": int(image.shape[2]), "phase": spec["phase"]}
    atomic_write_json(root / "dataset.json", {"name": "abdomen_phantom", "modality": {"0": "CT"},
                                              "labels": {"0": "background", "1": "liver"}, "training": items})
    _DATASET.finish(root, params, names, info)
    logger.info("wrote a %d-patient abdomen phantom to %s in %.1f s", num_patients, root, time.perf_counter() - start)
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
    if not (is_int(low) and is_int(high)) or not 8 <= low <= high:
        raise ConfigError(f"slices: expected integers 8 <= min <= max, got {slices!r}")
    return {"num_patients": int(num_patients), "image_size": int(image_size), "seed": int(seed),
            "slices": [int(low), int(high)]}


def _sample_patient(rng: np.random.Generator, image_size: int, slices: list[int]) -> dict:
    """Anatomy, phase and acquisition of one patient (lengths in mm, z in [0, 1] from the top slice)."""
    depth = int(rng.integers(slices[0], slices[1] + 1))
    fov = rng.uniform(340.0, 440.0)
    a, b = rng.uniform(130.0, 175.0), rng.uniform(95.0, 130.0)  # trunk half-width (x) and half-depth (y)
    phase = "portal" if rng.uniform() < 0.6 else "native"
    contrast = phase == "portal"
    liver_top, liver_bottom = rng.uniform(0.02, 0.12), rng.uniform(0.45, 0.72)
    return {
        "depth": depth, "phase": phase,
        "spacing": (fov / image_size, fov / image_size, float(rng.uniform(220.0, 300.0) / depth)),
        "trunk": (rng.uniform(-8.0, 8.0), rng.uniform(-8.0, 8.0), a, b, rng.uniform(0.05, 0.2)),
        "fat": rng.uniform(8.0, 30.0), "muscle": rng.uniform(7.0, 13.0),
        "lung_end": rng.uniform(0.08, 0.25),
        "liver": {
            "top": liver_top, "bottom": liver_bottom, "peak": rng.uniform(0.25, 0.45),
            "right": (rng.uniform(-0.05, 0.2) * b, -rng.uniform(0.38, 0.5) * a,
                      rng.uniform(0.3, 0.42) * a, rng.uniform(0.5, 0.7) * b, rng.uniform(-0.4, 0.4)),
            "left": (-rng.uniform(0.2, 0.4) * b, -rng.uniform(-0.1, 0.1) * a,
                     rng.uniform(0.18, 0.32) * a, rng.uniform(0.15, 0.25) * b, rng.uniform(-0.3, 0.3)),
            "left_end": rng.uniform(0.35, 0.7),
            "value": rng.uniform(95.0, 125.0) if contrast else rng.uniform(50.0, 68.0),
            "gallbladder": (rng.uniform(0.0, 0.2) * b, -rng.uniform(0.15, 0.3) * a, rng.uniform(10.0, 18.0),
                            rng.uniform(0.5, 0.85), rng.uniform(0.1, 0.2)),
        },
        "spleen": ((rng.uniform(0.15, 0.4) * b, rng.uniform(0.5, 0.62) * a, rng.uniform(0.12, 0.18) * a,
                    rng.uniform(0.22, 0.35) * b, rng.uniform(-0.5, 0.5)),
                   rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.45),
                   rng.uniform(100.0, 135.0) if contrast else rng.uniform(42.0, 58.0)),
        "stomach": ((-rng.uniform(0.1, 0.35) * b, rng.uniform(0.2, 0.4) * a, rng.uniform(25.0, 45.0),
                     rng.uniform(20.0, 35.0), rng.uniform(0.0, np.pi)),
                    rng.uniform(0.05, 0.15), rng.uniform(0.3, 0.45), -900.0 if rng.uniform() < 0.5 else 15.0),
        "kidneys": (rng.uniform(0.45, 0.6), rng.uniform(0.15, 0.22),
                    rng.uniform(160.0, 220.0) if contrast else rng.uniform(28.0, 40.0)),
        "vessels": (rng.uniform(150.0, 190.0) if contrast else rng.uniform(35.0, 45.0), rng.uniform(10.0, 13.0)),
        "bone": (rng.uniform(18.0, 23.0), rng.uniform(500.0, 800.0), rng.uniform(150.0, 250.0)),
        "bowel": [(rng.uniform(-0.65, 0.25) * b, rng.uniform(-0.65, 0.65) * a, rng.uniform(10.0, 30.0),
                   rng.uniform(10.0, 30.0), rng.uniform(0.0, np.pi), rng.uniform(0.35, 1.0), rng.uniform(0.08, 0.25),
                   float(rng.choice([-900.0, 10.0, 30.0, 40.0], p=[0.2, 0.25, 0.3, 0.25])))
                  for _ in range(int(rng.integers(10, 18)))],
        "psoas": (rng.uniform(0.35, 0.55), rng.uniform(14.0, 22.0)),
        "noise": rng.uniform(8.0, 25.0), "texture_seed": int(rng.integers(2**31)),
    }


def _profile(t: np.ndarray, top: float, bottom: float, peak: float) -> np.ndarray:
    """Relative size (D,) of an organ spanning ``top`` .. ``bottom`` (z in [0, 1]),
    largest at ``peak`` (a fraction of the span), zero outside."""
    span = max(bottom - top, 1e-3)
    u = np.clip((t - top) / span, 0.0, 1.0)
    rise, fall = np.sqrt(np.clip(u / peak, 0.0, 1.0)), np.sqrt(np.clip((1.0 - u) / (1.0 - peak), 0.0, 1.0))
    return np.where((t >= top) & (t <= bottom), np.minimum(rise, fall), 0.0).astype(np.float32)


def _blob(t: np.ndarray, centre: float, half: float) -> np.ndarray:
    return np.sqrt(np.clip(1.0 - ((t - centre) / half) ** 2, 0.0, 1.0)).astype(np.float32)


def _render(spec: dict, image_size: int, noise_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image (int16 HU) and liver mask (uint8), both (S, S, D)."""
    pixel = spec["spacing"][0]
    axis = (np.arange(image_size, dtype=np.float32) - (image_size - 1) / 2) * np.float32(pixel)
    y, x = axis[:, None, None], axis[None, :, None]
    t = np.linspace(0.0, 1.0, spec["depth"], dtype=np.float32)
    image = np.full((image_size, image_size, spec["depth"]), _AIR, dtype=np.float32)

    def draw(cy, cx, a, b, angle, value, scale=1.0):
        distance = ellipse_distance(y, x, cy, cx, np.asarray(a, np.float32) * scale, np.asarray(b, np.float32) * scale,
                                    angle)
        paint(image, distance, value, pixel)
        return distance

    cy, cx, a, b, widen = spec["trunk"]
    grow = (1.0 + widen * t).astype(np.float32)
    draw(cy, cx, a * grow, b * grow, 0.0, -100.0)  # subcutaneous fat
    draw(cy, cx, a * grow - spec["fat"], b * grow - spec["fat"], 0.0, 50.0)  # muscle wall
    wall = spec["fat"] + spec["muscle"]
    draw(cy, cx, a * grow - wall, b * grow - wall, 0.0, -80.0)  # visceral fat
    lungs = _blob(t, 0.0, spec["lung_end"])
    for side in (-1.0, 1.0):
        draw(cy + 0.35 * b, cx + side * 0.5 * a, 0.32 * a * lungs, 0.45 * b * lungs, 0.0, -850.0)
    ribs = _blob(t, 0.0, 0.55)
    for angle in np.linspace(0.35, np.pi - 0.35, 7):
        for side in (-1.0, 1.0):
            ry = cy - np.cos(angle) * (b * grow - spec["fat"] - 4.0)
            rx = cx + side * np.sin(angle) * (a * grow - spec["fat"] - 4.0)
            draw(ry, rx, 5.0 * ribs, 5.0 * ribs, 0.0, 450.0)

    liver = spec["liver"]
    size = _profile(t, liver["top"], liver["bottom"], liver["peak"])
    left = size * _profile(t, liver["top"], liver["top"] + (liver["bottom"] - liver["top"]) * liver["left_end"], 0.3)
    right_d = draw(liver["right"][0] + cy, liver["right"][1] + cx, liver["right"][2] * size, liver["right"][3] * size,
                   liver["right"][4], liver["value"])
    left_d = draw(liver["left"][0] + cy, liver["left"][1] + cx, liver["left"][2] * left, liver["left"][3] * left,
                  liver["left"][4], liver["value"])
    gy, gx, gr, gz, gh = liver["gallbladder"]
    gall_d = draw(gy + cy, gx + cx, gr * _blob(t, gz, gh), 0.8 * gr * _blob(t, gz, gh), 0.3, 10.0)

    (sy, sx, sa, sb, sang), stop, sbottom, svalue = spec["spleen"]
    draw(sy + cy, sx + cx, sa, sb, sang, svalue, _profile(t, stop, sbottom, 0.45))
    (my, mx, ma, mb, mang), ztop, zbottom, mvalue = spec["stomach"]
    stomach = _profile(t, ztop, zbottom, 0.4)
    draw(my + cy, mx + cx, ma * stomach, mb * stomach, mang, 40.0)
    draw(my + cy, mx + cx, (ma - 4.0) * stomach, (mb - 4.0) * stomach, mang, mvalue)
    kidney_centre, kidney_half, kidney_value = spec["kidneys"]
    kidneys = _blob(t, kidney_centre, kidney_half)
    for side in (-1.0, 1.0):
        draw(cy + 0.45 * b, cx + side * 0.33 * a, 0.11 * a * kidneys, 0.17 * b * kidneys, side * 0.4, kidney_value)
        draw(cy + 0.45 * b, cx + side * 0.3 * a, 0.04 * a * kidneys, 0.07 * b * kidneys, 0.0, 5.0)
    for by, bx, ba, bb, bang, bz, bh, bvalue in spec["bowel"]:
        draw(by + cy, bx + cx, ba, bb, bang, bvalue, _blob(t, bz, bh))

    psoas_top, psoas_size = spec["psoas"]
    psoas = np.clip((t - psoas_top) / (1.0 - psoas_top), 0.0, 1.0) ** 0.5
    for side in (-1.0, 1.0):
        draw(cy + 0.62 * b, cx + side * 0.2 * a, psoas_size * psoas, 1.3 * psoas_size * psoas, side * 0.3, 50.0)
    vessel_value, vessel_radius = spec["vessels"]
    draw(cy + 0.42 * b, cx + 0.08 * a, vessel_radius, vessel_radius, 0.0, vessel_value)  # aorta
    ivc_d = draw(cy + 0.3 * b, cx - 0.15 * a, vessel_radius * 1.2, vessel_radius, 0.0, vessel_value * 0.9)
    radius, cortex, marrow = spec["bone"]
    draw(cy + 0.68 * b, cx, radius, radius * 0.85, 0.0, cortex)
    draw(cy + 0.68 * b, cx, radius - 3.0, radius * 0.85 - 3.0, 0.0, marrow)
    draw(cy + 0.68 * b + radius + 7.0, cx, 7.0, 6.0, 0.0, 10.0)  # spinal canal

    mask = ((np.minimum(right_d, left_d) < 0) & (gall_d >= 0) & (ivc_d >= 0)).astype(np.uint8)
    texture = ndimage.gaussian_filter(
        np.random.default_rng(spec["texture_seed"]).standard_normal(image.shape).astype(np.float32),
        sigma=(4.0 / pixel, 4.0 / pixel, 0.0))
    body = image > -500.0
    image += np.where(body, 6.0 * texture / max(float(texture.std()), 1e-6), 0.0).astype(np.float32)
    image += np.float32(spec["noise"]) * noise_rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.round(image), -1024, 3071).astype(np.int16), mask
