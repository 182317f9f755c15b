"""Scribbles synthesised from masks: coverage, agreement, connectedness, thinness, determinism."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from alseg_monai.data.phantom import make_phantom
from alseg_monai.data.scribbles import annotated_fraction, scribble_from_mask
from alseg_monai.errors import ConfigError, DataError

EIGHT = np.ones((3, 3), dtype=bool)


def heart_mask(size: int = 96, depth: int = 5, seed: int = 0) -> np.ndarray:
    """A (size, size, depth) cardiac-like label map: RV crescent 1, myocardial ring 2, LV disk 3."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size].astype(float)
    mask = np.zeros((size, size, depth), dtype=np.uint8)
    for z in range(depth):
        cy, cx = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
        scale = 1.0 - 0.5 * z / max(depth - 1, 1)
        r = np.hypot(rows - cy, cols - cx)
        epi, endo = 18 * scale, 11 * scale
        rv = (np.hypot((rows - cy) / 1.6, (cols - cx + 12 * scale) / 1.0) < 16 * scale) & (r >= epi)
        mask[..., z][rv] = 1
        mask[..., z][r < epi] = 2
        mask[..., z][r < endo] = 3
    return mask


def components(binary: np.ndarray) -> int:
    return ndimage.label(binary, structure=EIGHT)[1]


def test_output_type_and_agreement_with_mask():
    mask = heart_mask()
    scribble = scribble_from_mask(mask, 4, seed=1)
    assert scribble.shape == mask.shape and scribble.dtype == np.uint8
    assert set(np.unique(scribble)) <= {0, 1, 2, 3, 4}
    annotated = scribble != 4
    np.testing.assert_array_equal(scribble[annotated], mask[annotated])


@pytest.mark.parametrize("width", [1, 2])
def test_every_present_class_scribbled_in_every_slice(width):
    mask = heart_mask()
    scribble = scribble_from_mask(mask, 4, seed=2, width=width)
    for z in range(mask.shape[2]):
        for cls in np.unique(mask[..., z]):
            assert np.any(scribble[..., z] == cls), f"class {cls} has no scribble in slice {z}"


@pytest.mark.parametrize("width", [1, 2])
def test_foreground_strokes_connected_thin_and_inside_eroded_structure(width):
    mask = heart_mask()
    scribble = scribble_from_mask(mask, 4, seed=3, width=width)
    for z in range(mask.shape[2]):
        for cls in (1, 2, 3):
            stroke = scribble[..., z] == cls
            assert components(stroke) == 1, f"class {cls}, slice {z}: stroke not one 8-connected piece"
            core = ndimage.binary_erosion(mask[..., z] == cls)
            assert np.all(core[stroke]), f"class {cls}, slice {z}: stroke leaves the eroded structure"
            # thin: no 3 x 3 block fully painted
            assert not np.any(ndimage.binary_erosion(stroke, structure=EIGHT)), f"class {cls}, slice {z}: thick"


def test_strokes_follow_the_structure():
    """The myocardial stroke is an arc of the ring, not a few pixels: it spans a good part of it."""
    mask = heart_mask(depth=1)[..., 0]
    scribble = scribble_from_mask(mask, 4, seed=4, width=1, length_fraction=(1.0, 1.0))
    rows, cols = np.nonzero(scribble == 2)
    cy, cx = np.argwhere(mask == 3).mean(axis=0)
    angles = np.unwrap(np.sort(np.arctan2(rows - cy, cols - cx)))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    covered = 2 * np.pi - gaps.max()
    assert covered > np.pi / 2, f"myocardial stroke covers only {np.degrees(covered):.0f} degrees"


def test_background_strokes_keep_away_from_foreground():
    mask = heart_mask()
    margin = 3
    scribble = scribble_from_mask(mask, 4, seed=5, background_margin=margin, background_strokes=2, outer_strokes=0)
    for z in range(mask.shape[2]):
        background_stroke = scribble[..., z] == 0
        assert background_stroke.any()
        distance = ndimage.distance_transform_edt(mask[..., z] == 0)
        assert distance[background_stroke].min() >= margin
        assert 1 <= components(background_stroke) <= 2


def test_outer_strokes_mark_the_far_background():
    mask = heart_mask()
    margin, band = 3, 12
    near = scribble_from_mask(mask, 4, seed=5, background_margin=margin, background_band=band, outer_strokes=0)
    both = scribble_from_mask(mask, 4, seed=5, background_margin=margin, background_band=band, outer_strokes=2)
    for z in range(mask.shape[2]):
        distance = ndimage.distance_transform_edt(mask[..., z] == 0)
        far = distance > margin + band
        assert not (near[..., z] == 0)[far].any()
        outer = (both[..., z] == 0) & far
        assert outer.sum() >= 10 and 1 <= components(outer) <= 2
        # The strokes near the heart are drawn first, from the same draws, so they are kept.
        assert np.array_equal(both[..., z][~far], near[..., z][~far])


def test_annotated_fraction_is_a_few_percent_on_the_phantom(tmp_path):
    """On phantom slices the scribbles label well under a tenth of the pixels (docs/benchmarks.md, phantom)."""
    root = make_phantom(tmp_path, 2, image_size=96, seed=0, progress=False)
    scribbles = [np.asarray(nib.load(str(p)).dataobj) for p in sorted(root.rglob("*_scribble.nii.gz"))]
    fraction = float(np.mean([annotated_fraction(s) for s in scribbles]))
    print(f"\nannotated-pixel fraction of phantom scribbles (96 x 96): {fraction:.2%}")
    assert 0.02 < fraction < 0.12


def test_determinism_and_seed_dependence():
    mask = heart_mask()
    first = scribble_from_mask(mask, 4, seed=7)
    np.testing.assert_array_equal(first, scribble_from_mask(mask, 4, seed=7))
    assert not np.array_equal(first, scribble_from_mask(mask, 4, seed=8))
    # a 2D mask is scribbled like slice 0 of a volume
    np.testing.assert_array_equal(scribble_from_mask(mask[..., 0], 4, seed=7), first[..., 0])


def test_small_structures_fall_back_inside_the_structure():
    mask = np.zeros((40, 40), dtype=np.int64)
    rows, cols = np.mgrid[:40, :40]
    ring = np.abs(np.hypot(rows - 20, cols - 20) - 10) < 0.7  # one pixel thin: erosion empties it
    mask[ring] = 2
    mask[5, 5] = 3  # a single pixel
    mask[30:32, 3:5] = 1  # 2 x 2: erodes to nothing
    scribble = scribble_from_mask(mask, 4, seed=0, width=2)
    assert scribble[5, 5] == 3 and np.count_nonzero(scribble == 3) == 1
    for cls in (1, 2):
        stroke = scribble == cls
        assert stroke.any() and components(stroke) == 1 and np.all(mask[stroke] == cls)


def test_split_structure_gets_one_connected_stroke():
    mask = np.zeros((30, 60), dtype=np.int64)
    mask[5:25, 5:20] = 3
    mask[5:25, 35:58] = 3
    stroke = scribble_from_mask(mask, 4, seed=0) == 3
    assert components(stroke) == 1


def test_background_only_and_crowded_slices():
    empty = np.zeros((32, 32), dtype=np.uint8)
    scribble = scribble_from_mask(empty, 4, seed=0)
    assert set(np.unique(scribble)) == {0, 4}
    crowded = np.ones((20, 20), dtype=np.uint8)
    crowded[0, :3] = 0  # background only along the border, next to the foreground
    scribble = scribble_from_mask(crowded, 2, ignore_index=5, seed=0)
    assert np.any(scribble == 0) and np.any(scribble == 1)
    assert np.all(scribble[scribble == 0] == crowded[scribble == 0])
    assert set(np.unique(scribble_from_mask(crowded, 2, ignore_index=5, background_strokes=0))) == {1, 5}


def test_float_masks_with_whole_values_are_accepted():
    mask = heart_mask(depth=2)
    np.testing.assert_array_equal(scribble_from_mask(mask.astype(np.float32), 4), scribble_from_mask(mask, 4))


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros(10, dtype=np.uint8), r"\(10,\)"),
        (np.zeros((4, 4, 4, 4), dtype=np.uint8), r"\(4, 4, 4, 4\)"),
        (np.zeros((0, 4), dtype=np.uint8), r"\(0, 4\)"),
        (np.full((4, 4), 0.5), "non-integer"),
        (np.full((4, 4), 4, dtype=np.uint8), r"\[0, 3\].*\[4\]"),
        (np.full((4, 4), -1, dtype=np.int16), r"\[-1\]"),
        (np.array([["a"]]), "dtype"),
    ],
)
def test_bad_masks_raise_data_error(mask, match):
    with pytest.raises(DataError, match=match):
        scribble_from_mask(mask, 4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"ignore_index": 2}, "ignore_index"),
        ({"ignore_index": 300}, "ignore_index"),
        ({"width": 3}, "width"),
        ({"erosion": -1}, "erosion"),
        ({"length_fraction": (0.8, 0.5)}, "length_fraction"),
        ({"length_fraction": (0.0, 0.5)}, "length_fraction"),
        ({"length_fraction": 0.5}, "length_fraction"),
        ({"background_strokes": -1}, "background_strokes"),
        ({"background_margin": 0}, "background_margin"),
        ({"background_band": 0}, "background_band"),
        ({"outer_strokes": -1}, "outer_strokes"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, name):
    arguments = {"num_classes": 4, **kwargs}
    with pytest.raises(ConfigError, match=name):
        scribble_from_mask(np.zeros((8, 8), dtype=np.uint8), **arguments)


def test_annotated_fraction_counts_labelled_pixels():
    scribble = np.full((10, 10), 4, dtype=np.uint8)
    scribble[0, :5] = 0
    assert annotated_fraction(scribble) == pytest.approx(0.05)
    with pytest.raises(DataError, match="non-empty"):
        annotated_fraction(np.zeros((0,)))
