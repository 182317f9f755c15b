"""The DAVIS reader: DAVIS 2016 video object segmentation (Perazzi et al., CVPR 2016),
read in place.

The paper (section 4, "Datasets") treats a video as a volume and a frame as a slice, to
show the method beyond medical images. Layout of the DAVIS 2016 release::

    JPEGImages/480p/<video>/00000.jpg ...       RGB frames
    Annotations/480p/<video>/00000.png ...      one mask per frame, 0 / 255
    ImageSets/480p/train.txt, val.txt           optional subsets

``ImageSets`` lines read ``/JPEGImages/480p/<video>/00000.jpg /Annotations/480p/<video>/00000.png``
(one line per frame; DAVIS 2016, as read by public DAVIS 2016 loaders); a line holding a
bare video name (the DAVIS 2017 ``ImageSets/2017`` form) is accepted too. The file stem
(``train`` / ``val``) becomes the subset of its videos; listed videos that are not on
disk are skipped with a warning (a file naming none of them is thus ignored), and a
video in both files is a :class:`DataError`. The paper splits the 20 ``val`` videos into 5 validation and 15
test videos: pass them to ``split_dataset(index, method="lists", lists={"train": [...],
"val": [...], "test": [...]})``.

Records: video = volume = patient (the folder name); frame ``z`` = slice ``z`` in
natural file-name order; format ``frames`` with ``image`` / ``label`` the frame and mask
lists (``label`` None for a video without an annotation folder, kept unlabelled with a
warning). Frames stay RGB (``channels`` 3); masks are binarised on loading (any
non-zero pixel is the object, class 1), so ``num_classes`` is 2. ``spatial_shape`` is
``[width, height]``, the ``(x, y)`` order the loader returns. Checked before returning:
frame and mask names agree one to one, and every frame and mask of a video has one size.

Options: ``resolution="480p"``, ``videos=None`` (a subset of video names),
``num_classes=2``, ``ignore_index=2`` (the "unannotated" value of scribbles synthesised
from the masks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ...errors import ConfigError, DataError
from ..records import DatasetIndex, make_slice_records, natural_key
from .common import check_root, volume_record

__all__ = ["read_davis"]

logger = logging.getLogger(__name__)

_FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
_SUBSET_FILES = ("train", "val")


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")),
        key=natural_key,
    )


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size  # (width, height), read from the header
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the image ({err}); expected a JPEG or PNG file") from err


def _check_sizes(paths: Sequence[Path], video: str) -> tuple[int, int]:
    """The common ``(width, height)`` of a video's frames and masks."""
    size = _image_size(paths[0])
    for path in paths[1:]:
        other = _image_size(path)
        if other != size:
            raise DataError(
                f"{path}: {other[0]} x {other[1]} pixels, but {paths[0].name} of video {video} is "
                f"{size[0]} x {size[1]}; expected one size per video"
            )
    return size


def _match_masks(video: str, frames: list[Path], mask_folder: Path) -> list[Path]:
    """The mask of every frame, matched by file stem; any unmatched name is an error."""
    masks = _files(mask_folder, (".png",))
    frame_stems = [p.stem for p in frames]
    mask_stems = {p.stem: p for p in masks}
    missing = [s for s in frame_stems if s not in mask_stems]
    extra = sorted(set(mask_stems) - set(frame_stems), key=natural_key)
    if missing or extra:
        raise DataError(
            f"{mask_folder}: frames and masks of video {video} do not match (frames without a mask: "
            f"{missing[:5]}, masks without a frame: {extra[:5]}); expected one <frame>.png per frame"
        )
    return [mask_stems[s] for s in frame_stems]


def _parse_image_set(path: Path) -> list[str]:
    """Video names listed in a DAVIS ``ImageSets`` file, in first-seen order: the folder
    above the frame in ``/JPEGImages/480p/<video>/00000.jpg ...`` lines, or the line
    itself when it is a bare name."""
    names = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        tokens = line.split()
        parts = [p for p in tokens[0].split("/") if p] if tokens else []
        if parts:
            names.append(parts[-2] if len(parts) >= 2 else parts[0])
    return list(dict.fromkeys(names))


def _subsets(root: Path, resolution: str, available: set[str]) -> dict[str, str]:
    """``{video: "train" | "val"}`` from the ``ImageSets`` files; names of videos that are
    not on disk are skipped (with a warning), a file naming none of them is ignored."""
    subsets: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for name in _SUBSET_FILES:
        path = root / "ImageSets" / resolution / f"{name}.txt"
        if not path.is_file():
            continue
        listed = _parse_image_set(path)
        known = [v for v in listed if v in available]
        if len(known) < len(listed):
            logger.warning("%s: %d of %d listed videos are not in JPEGImages/%s (e.g. %r); %s",
                           path, len(listed) - len(known), len(listed), resolution,
                           next(v for v in listed if v not in available),
                           "skipped" if known else "the file is ignored")
        for video in known:
            if video in subsets:
                raise DataError(f"{path}: video {video} is also listed in {origin[video]}; a video has one subset")
            subsets[video], origin[video] = name, path
    return subsets


def read_davis(
    root: str | Path,
    resolution: str = "480p",
    videos: Sequence[str] | None = None,
    num_classes: int = 2,
    ignore_index: int = 2,
) -> DatasetIndex:
    """Index a DAVIS 2016 folder (see the module docstring).

    Args:
        root: the DAVIS folder (holding ``JPEGImages``).
        resolution: the resolution sub-folder (``480p`` or ``1080p``).
        videos: read only these videos (default: all).
        num_classes: 2 (background, object).
        ignore_index: the "unannotated" value of synthesised scribbles.

    Raises:
        ConfigError: ``videos`` names a video that is not in the dataset.
        DataError: a missing ``JPEGImages/<resolution>`` folder, an empty video, frame
            and mask names that do not match, an unreadable image, frames or masks of
            different sizes, or a video in two ``ImageSets`` files.
    """
    root = check_root(root, "davis")
    image_root = root / "JPEGImages" / resolution
    if not image_root.is_dir():
        raise DataError(f"{image_root}: folder not found; expected DAVIS frames in JPEGImages/{resolution}/<video>/")
    mask_root = root / "Annotations" / resolution
    available = sorted((p.name for p in image_root.iterdir() if p.is_dir()), key=natural_key)
    if mask_root.is_dir():
        orphans = sorted({p.name for p in mask_root.iterdir() if p.is_dir()} - set(available), key=natural_key)
        if orphans:
            raise DataError(
                f"{mask_root / orphans[0]}: annotations of video {orphans[0]} without frames in {image_root}"
            )
    found = available
    if videos is not None:
        chosen = set(videos)
        unknown = sorted(chosen - set(available))
        if unknown:
            raise ConfigError(
                f"videos {unknown} are not in {image_root}; "
                f"available: {available[:10]}{' ...' if len(available) > 10 else ''}"
            )
        found = [v for v in available if v in chosen]
    volumes, slices = [], []
    for video in found:
        frames = _files(image_root / video, _FRAME_SUFFIXES)
        if not frames:
            raise DataError(f"{image_root / video}: no frames (.jpg / .png); expected 00000.jpg, 00001.jpg, ...")
        masks = None
        if (mask_root / video).is_dir():
            masks = _match_masks(video, frames, mask_root / video)
        else:
            logger.warning("video %s has no annotation folder %s; kept unlabelled", video, mask_root / video)
        size = _check_sizes(frames + (masks or []), video)
        volume = volume_record(
            video, video, "frames", [str(p) for p in frames], [str(p) for p in masks] if masks else None, None,
            num_slices=len(frames), spatial_shape=size,
        )
        sources = [
            {"image": str(frame), "label": str(masks[z]) if masks else None, "scribble": None}
            for z, frame in enumerate(frames)
        ]
        volumes.append(volume)
        slices.extend(make_slice_records(volume, sources))
    subsets = {v: s for v, s in _subsets(root, resolution, set(available)).items() if v in set(found)}
    return DatasetIndex("davis", str(root), volumes, slices, num_classes, 3, ignore_index, subsets)
