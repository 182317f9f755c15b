"""Scribble annotations synthesised from full label maps.

The paper trains its weakly supervised models on the ACDC scribbles of Valvano et al.
(paper Sec. 4, "scribble annotations have been provided for each scan by a previous
study"): per slice, each structure carries one thin stroke drawn roughly along its
middle, the background carries a few strokes around the heart, and every other pixel
is unannotated (value 4 in the WSL4MIS files). :func:`scribble_from_mask` draws such
scribbles from a mask, so that a dataset without human scribbles (the synthetic
phantom, or a user's fully labelled data) can be used in the weak-annotation setting.

How a stroke is drawn (all in one 2D slice):

* foreground class ``c``: the class region is eroded by ``erosion`` pixels and its
  largest 8-connected component kept. Within it, a geodesic path is traced between two
  far-apart pixels (farthest from a random pixel, then farthest from that one), with a
  step cost inversely proportional to the distance to the region border, so the path
  follows the medial axis: a diameter of the LV cavity, an arc half-way round the
  myocardial ring, the length of the RV crescent. A random contiguous part of
  ``length_fraction`` of the path is kept. When erosion empties the region (thin or
  tiny structures), the same is done in the un-eroded region with half the length; a
  one-pixel region gets that pixel.
* background: the same path tracing in the band of background pixels whose distance to
  the foreground is in ``[background_margin, background_margin + background_band]``
  (so strokes never touch the foreground and run round the heart as annotators draw
  them); ``background_strokes`` strokes, each in what the previous ones left free.
  Then ``outer_strokes`` more in the background beyond that band (body wall, fat,
  other organs, air): annotators also mark the far background, and a model that never
  sees a label there is free to call bright fat "blood" (on the phantom, with near
  strokes only, DMPLS put 93 % of its false positives more than 10 px from the heart).
* ``width=2`` thickens every stroke with a 2 x 2 dilation clipped to its region.

Measured on the phantom (:func:`alseg_monai.data.phantom.make_phantom`, defaults): about
7 % of the pixels of a 128 x 128 slice annotated (10 % at 96 x 96: strokes are
set in pixels, so smaller images get a larger share), a tenth of them foreground; on
average 12-21 % of each structure's pixels are scribbled. The ``phantom`` section of
docs/benchmarks.md holds the current figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from ..errors import ConfigError, DataError
from ..utils import derive_seed

__all__ = ["annotated_fraction", "scribble_from_mask"]

_EIGHT = np.ones((3, 3), dtype=bool)
# The four "forward" neighbour offsets; with their mirror images they give 8-connectivity.
_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))
_MAX_LABEL = 255


def scribble_from_mask(
    mask: np.ndarray,
    num_classes: int,
    ignore_index: int = 4,
    seed: int = 0,
    *,
    erosion: int = 1,
    width: int = 2,
    length_fraction: Sequence[float] = (0.6, 1.0),
    background_strokes: int = 2,
    background_margin: int = 3,
    background_band: int | None = 12,
    outer_strokes: int = 2,
) -> np.ndarray:
    """Synthesise a scribble annotation from a label map.

    Args:
        mask: integer label map, (H, W) or (H, W, D); a 3D map is scribbled per z-slice.
            Values in ``[0, num_classes)``, 0 being the background.
        num_classes: number of classes including the background (4 for ACDC).
        ignore_index: value of unannotated pixels (4 in the ACDC / WSL4MIS scribbles);
            must lie outside ``[0, num_classes)`` and fit in uint8.
        seed: random seed; slice ``z`` draws from ``derive_seed(seed, "slice", z)``
            (a 2D mask counts as slice 0), so the result is a function of the inputs.
        erosion: pixels eroded from each foreground region before drawing its stroke.
        width: stroke width in pixels, 1 or 2.
        length_fraction: (low, high) bounds of the fraction of the medial path kept
            per stroke, drawn uniformly per stroke; ``0 < low <= high <= 1``.
        background_strokes: number of background strokes per slice (0 for none).
        background_margin: minimum distance in pixels between a background stroke and
            the foreground (>= 2 keeps strokes from touching it).
        background_band: background strokes stay within ``background_margin +
            background_band`` pixels of the foreground; None allows the whole
            background.
        outer_strokes: number of background strokes beyond ``background_margin +
            background_band`` pixels from the foreground (0 for none; ignored when
            ``background_band`` is None, as the near strokes then cover the whole
            background).

    Returns:
        uint8 array of the shape of ``mask``: class value on scribbled pixels,
        ``ignore_index`` elsewhere. Every class present in a slice has at least one
        scribbled pixel in that slice (the background when ``background_strokes > 0``;
        where no background pixel is ``background_margin`` away from the foreground,
        its strokes use the background pixels farthest from it); each stroke is
        8-connected and agrees with ``mask``.

    Raises:
        DataError: ``mask`` is not 2D/3D, not integer-valued, or holds values outside
            ``[0, num_classes)``.
        ConfigError: an invalid setting.
    """
    _check_settings(num_classes, ignore_index, erosion, width, length_fraction, background_strokes,
                    background_margin, background_band, outer_strokes)
    labels = _check_mask(mask, num_classes)
    settings = dict(
        erosion=int(erosion),
        width=int(width),
        length_fraction=(float(length_fraction[0]), float(length_fraction[1])),
        background_strokes=int(background_strokes),
        background_margin=int(background_margin),
        background_band=None if background_band is None else int(background_band),
        outer_strokes=0 if background_band is None else int(outer_strokes),
    )
    volume = labels[..., None] if labels.ndim == 2 else labels
    out = np.full(volume.shape, ignore_index, dtype=np.uint8)
    for z in range(volume.shape[2]):
        rng = np.random.default_rng(derive_seed(seed, "slice", z))
        _scribble_slice(volume[:, :, z], out[:, :, z], num_classes, rng, **settings)
    return out[..., 0] if labels.ndim == 2 else out


def annotated_fraction(scribble: np.ndarray, ignore_index: int = 4) -> float:
    """Fraction of the pixels of ``scribble`` that carry a label (not ``ignore_index``)."""
    scribble = np.asarray(scribble)
    if scribble.size == 0:
        raise DataError(f"scribble: expected a non-empty array, got shape {scribble.shape}")
    return float(np.count_nonzero(scribble != ignore_index)) / scribble.size


def _check_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise DataError(f"mask: expected a non-empty 2D (H, W) or 3D (H, W, D) label map, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise DataError(
                f"mask of shape {array.shape}: expected integer labels, got non-integer {array.dtype} values"
            )
    elif not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"mask of shape {array.shape}: expected an integer label map, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_classes:
        found = np.unique(array)
        raise DataError(
            f"mask of shape {array.shape}: labels must lie in [0, {num_classes - 1}] "
            f"(num_classes={num_classes}), found values {found[:10].tolist()}"
        )
    return array.astype(np.int64)


def _check_settings(num_classes, ignore_index, erosion, width, length_fraction, background_strokes,
                    background_margin, background_band, outer_strokes) -> None:
    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(num_classes) or not 2 <= num_classes <= _MAX_LABEL:
        raise ConfigError(f"num_classes: expected an integer in [2, {_MAX_LABEL}], got {num_classes!r}")
    if not is_int(ignore_index) or not 0 <= ignore_index <= _MAX_LABEL or ignore_index < num_classes:
        raise ConfigError(
            f"ignore_index: expected an integer in [{num_classes}, {_MAX_LABEL}] (outside the "
            f"{num_classes} class values, fitting uint8), got {ignore_index!r}"
        )
    if not is_int(erosion) or erosion < 0:
        raise ConfigError(f"erosion: expected an integer >= 0 (pixels), got {erosion!r}")
    if not is_int(width) or width not in (1, 2):
        raise ConfigError(f"width: expected 1 or 2 (pixels), got {width!r}")
    try:
        low, high = (float(v) for v in length_fraction)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"length_fraction: expected a pair (low, high), got {length_fraction!r}") from err
    if not 0.0 < low <= high <= 1.0:
        raise ConfigError(f"length_fraction: expected 0 < low <= high <= 1, got {length_fraction!r}")
    if not is_int(background_strokes) or background_strokes < 0:
        raise ConfigError(f"background_strokes: expected an integer >= 0, got {background_strokes!r}")
    if not is_int(background_margin) or background_margin < 1:
        raise ConfigError(f"background_margin: expected an integer >= 1 (pixels), got {background_margin!r}")
    if background_band is not None and (not is_int(background_band) or background_band < 1):
        raise ConfigError(f"background_band: expected None or an integer >= 1 (pixels), got {background_band!r}")
    if not is_int(outer_strokes) or outer_strokes < 0:
        raise ConfigError(f"outer_strokes: expected an integer >= 0, got {outer_strokes!r}")


def _scribble_slice(labels: np.ndarray, out: np.ndarray, num_classes: int, rng: np.random.Generator, *,
                    erosion: int, width: int, length_fraction: tuple[float, float], background_strokes: int,
                    background_margin: int, background_band: int | None, outer_strokes: int) -> None:
    """Write the scribble of one (H, W) slice into ``out`` (a view), class by class."""
    for cls in range(1, num_classes):
        region = labels == cls
        if region.any():
            out[_foreground_stroke(region, erosion, width, length_fraction, rng)] = cls
    background = labels == 0
    if not background.any():
        return
    # Distance of each background pixel to the foreground (None: no foreground at all).
    distance = None if background.all() else ndimage.distance_transform_edt(background)
    gap = 2 * background_margin
    if background_strokes:
        band = _background_band(background, distance, background_margin, background_band)
        for stroke in _background_strokes(band, background_strokes, gap, width, length_fraction, rng):
            out[stroke] = 0
    if outer_strokes and distance is not None:
        outer = distance > background_margin + background_band
        for stroke in _background_strokes(outer, outer_strokes, gap, width, length_fraction, rng):
            out[stroke] = 0


def _foreground_stroke(region: np.ndarray, erosion: int, width: int, length_fraction: tuple[float, float],
                       rng: np.random.Generator) -> np.ndarray:
    """A connected stroke inside ``region`` eroded by ``erosion`` pixels (or, if that is empty, in ``region``)."""
    box = _bounding_box(region, pad=1)
    local = region[box]
    # Erode with the 4-neighbour cross: the 3 x 3 square would cut thin rings (a
    # myocardium a few pixels thick) into fragments along their diagonals.
    core = ndimage.binary_erosion(local, iterations=erosion) if erosion else local
    if core.any():
        domain, fraction = _largest_component(core), length_fraction
    else:
        # Too thin or small to erode: a shorter stroke so it stays well inside the structure.
        domain, fraction = _largest_component(local), (length_fraction[0] / 2, length_fraction[1] / 2)
    stroke = np.zeros_like(region)
    stroke[box] = _stroke_in(domain, width, fraction, rng)
    return stroke


def _background_band(background: np.ndarray, distance: np.ndarray | None, margin: int,
                     band: int | None) -> np.ndarray:
    """Background pixels at distance ``[margin, margin + band]`` from the foreground (or the farthest ones)."""
    if distance is None:
        return background
    allowed = distance >= margin
    if band is not None:
        allowed &= distance <= margin + band
    if not allowed.any():
        # Background squeezed by the foreground: keep its pixels farthest from it, so
        # the class still gets a scribble (they touch the foreground only if all do).
        allowed = distance >= distance.max()
    return allowed


def _background_strokes(band: np.ndarray, count: int, gap: int, width: int, length_fraction: tuple[float, float],
                        rng: np.random.Generator) -> list[np.ndarray]:
    strokes, free = [], band.copy()
    for _ in range(count):
        if not free.any():
            break
        stroke = _stroke_in(_largest_component(free), width, length_fraction, rng)
        strokes.append(stroke)
        # A wide gap, so the next stroke is drawn elsewhere rather than alongside this one.
        free &= ~ndimage.binary_dilation(stroke, structure=_EIGHT, iterations=gap)
    return strokes


def _largest_component(region: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(region, structure=_EIGHT)
    if count <= 1:
        return region
    sizes = np.bincount(components.ravel())[1:]
    return components == (1 + int(np.argmax(sizes)))


def _bounding_box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The bounding box of ``mask``'s pixels grown by ``pad`` (clipped to the image)."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))


def _stroke_in(domain: np.ndarray, width: int, length_fraction: tuple[float, float],
               rng: np.random.Generator) -> np.ndarray:
    """A random part of the medial path of the 8-connected ``domain``, as a boolean mask."""
    # Work in the domain's bounding box: the distance transform and graph then cost
    # what the structure costs, not what the whole image does.
    box = _bounding_box(domain, pad=1)
    local = domain[box]
    rows, cols = np.nonzero(local)
    path = _medial_path(local, rows, cols, rng)
    keep = max(1, int(round(rng.uniform(*length_fraction) * len(path))))
    start = int(rng.integers(0, len(path) - keep + 1))
    segment = path[start:start + keep]
    stroke = np.zeros_like(local)
    stroke[rows[segment], cols[segment]] = True
    if width == 2:
        stroke = ndimage.binary_dilation(stroke, structure=np.ones((2, 2), dtype=bool)) & local
    out = np.zeros_like(domain)
    out[box] = stroke
    return out


def _medial_path(domain: np.ndarray, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pixel indices (into ``rows``/``cols``) of a geodesic path between two far-apart pixels of ``domain``.

    Steps cost their length divided by the mean distance-to-border of their two pixels,
    so the cheapest path runs along the middle of the region rather than hugging its edge.
    """
    count = rows.size
    if count == 1:
        return np.zeros(1, dtype=np.int64)
    index = np.full(domain.shape, -1, dtype=np.int64)
    index[rows, cols] = np.arange(count)
    depth = ndimage.distance_transform_edt(domain)[rows, cols]
    sources, targets, costs = [], [], []
    height, width = domain.shape
    for dr, dc in _OFFSETS:
        r2, c2 = rows + dr, cols + dc
        inside = (r2 >= 0) & (r2 < height) & (c2 >= 0) & (c2 < width)
        a = np.nonzero(inside)[0]
        b = index[r2[inside], c2[inside]]
        linked = b >= 0
        a, b = a[linked], b[linked]
        cost = np.hypot(dr, dc) * 2.0 / (depth[a] + depth[b])
        sources += [a, b]
        targets += [b, a]
        costs += [cost, cost]
    graph = coo_matrix(
        (np.concatenate(costs), (np.concatenate(sources), np.concatenate(targets))), shape=(count, count)
    ).tocsr()
    start = int(rng.integers(0, count))
    first = int(np.argmax(_finite(dijkstra(graph, indices=start))))
    distance, predecessors = dijkstra(graph, indices=first, return_predecessors=True)
    node = int(np.argmax(_finite(distance)))
    path = [node]
    while node != first:
        node = int(predecessors[node])
        path.append(node)
    return np.asarray(path, dtype=np.int64)


def _finite(distance: np.ndarray) -> np.ndarray:
    # The domain is one component, so every distance is finite; guard against rounding anyway.
    return np.where(np.isfinite(distance), distance, -1.0)
