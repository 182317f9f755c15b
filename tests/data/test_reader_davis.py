from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alseg_monai import ConfigError, DataError
from alseg_monai.data import SliceCache, SliceDataset, VolumeDataset, read_dataset

HEIGHT, WIDTH = 18, 26


def write_video(root: Path, video: str, frames: int, seed: int, masks: bool = True) -> np.ndarray:
    """JPEG frames with a red square moving right, and 0/255 masks of it; returns masks (D, H, W)."""
    rng = np.random.default_rng(seed)
    images = root / "JPEGImages" / "480p" / video
    annotations = root / "Annotations" / "480p" / video
    images.mkdir(parents=True, exist_ok=True)
    stack = np.zeros((frames, HEIGHT, WIDTH), np.uint8)
    for z in range(frames):
        stack[z, 5:13, 2 + z: 10 + z] = 255
        rgb = rng.integers(0, 60, (HEIGHT, WIDTH, 3)).astype(np.uint8)
        rgb[stack[z] > 0] = (230, 30, 30)
        Image.fromarray(rgb).save(images / f"{z:05d}.jpg", quality=95)
        if masks:
            annotations.mkdir(parents=True, exist_ok=True)
            Image.fromarray(stack[z]).save(annotations / f"{z:05d}.png")
    return stack


def write_image_set(root: Path, name: str, videos: dict[str, int]) -> None:
    folder = root / "ImageSets" / "480p"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"/JPEGImages/480p/{video}/{z:05d}.jpg /Annotations/480p/{video}/{z:05d}.png"
        for video, frames in videos.items()
        for z in range(frames)
    ]
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def davis_root(tmp_path: Path) -> Path:
    root = tmp_path / "DAVIS"
    for i, (video, frames) in enumerate((("bear", 5), ("blackswan", 4), ("car-shadow", 6))):
        write_video(root, video, frames, seed=i)
    write_image_set(root, "train", {"bear": 5, "car-shadow": 6})
    write_image_set(root, "val", {"blackswan": 4})
    return root


def test_records_and_subsets(davis_root):
    index = read_dataset("davis", davis_root)
    assert [v["id"] for v in index.volumes] == ["bear", "blackswan", "car-shadow"]
    assert index.patients == ["bear", "blackswan", "car-shadow"]
    assert index.subsets == {"bear": "train", "blackswan": "val", "car-shadow": "train"}
    bear = index.volumes[0]
    assert bear["format"] == "frames" and bear["num_slices"] == 5 and bear["spatial_shape"] == [WIDTH, HEIGHT]
    assert [Path(p).name for p in bear["image"]] == [f"{z:05d}.jpg" for z in range(5)]
    assert [Path(p).name for p in bear["label"]] == [f"{z:05d}.png" for z in range(5)]
    frame = index.slices[7]
    assert (frame["id"], frame["patient"], frame["volume"]) == ("blackswan_slice_2", "blackswan", "blackswan")
    assert frame["slice"] == 2
    assert frame["image"].endswith("blackswan/00002.jpg") and frame["label"].endswith("blackswan/00002.png")
    assert index.channels == 3 and index.num_classes == 2 and len(index.slices) == 15


def test_cache_rgb_and_binary_masks(davis_root):
    index = read_dataset("davis", davis_root)
    cache = SliceCache.from_index(index, image_size=16, progress=False)
    item = SliceDataset(index.slices, cache)[3]
    assert item["image"].shape == (3, 16, 16) and item["label"].shape == (1, 16, 16)
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert set(np.unique(item["label"].numpy())) == {0, 1}
    red, green = item["image"][0].numpy(), item["image"][1].numpy()
    inside = item["label"][0].numpy() == 1
    assert red[inside].mean() > 0.7 and green[inside].mean() < 0.3  # RGB kept, in channel order
    volume = VolumeDataset(index.volumes, cache)[2]
    assert volume["image"].shape == (3, 16, 16, 6) and volume["spatial_shape"] == (WIDTH, HEIGHT)
    masks = write_video(davis_root / "copy", "car-shadow", 6, seed=2)
    np.testing.assert_array_equal(volume["label_original"].numpy(), (masks > 0).transpose(2, 1, 0))


def test_videos_option_and_bare_name_image_sets(davis_root):
    (davis_root / "ImageSets" / "480p" / "val.txt").write_text("blackswan\n")
    index = read_dataset("davis", davis_root, videos=["car-shadow", "blackswan"])
    assert index.patients == ["blackswan", "car-shadow"]
    assert index.subsets == {"blackswan": "val", "car-shadow": "train"}
    with pytest.raises(ConfigError, match=r"\['zebra'\] are not in"):
        read_dataset("davis", davis_root, videos=["zebra"])


def test_image_set_naming_absent_videos(davis_root, caplog):
    write_image_set(davis_root, "val", {"blackswan": 4, "dog": 3})
    with caplog.at_level(logging.WARNING, logger="alseg_monai.data.readers.davis"):
        index = read_dataset("davis", davis_root)
    assert index.subsets["blackswan"] == "val" and "1 of 2 listed videos" in caplog.text


def test_video_in_both_image_sets(davis_root):
    write_image_set(davis_root, "val", {"bear": 5})
    with pytest.raises(DataError, match=r"val.txt: video bear is also listed in .*train.txt"):
        read_dataset("davis", davis_root)


def test_video_without_annotations_is_unlabelled(davis_root, caplog):
    write_video(davis_root, "dog", 3, seed=9, masks=False)
    with caplog.at_level(logging.WARNING, logger="alseg_monai.data.readers.davis"):
        index = read_dataset("davis", davis_root)
    dog = index.volumes[-1]
    assert dog["id"] == "dog" and dog["label"] is None and "dog has no annotation folder" in caplog.text


def test_missing_and_empty_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_dataset("davis", tmp_path / "nope")
    with pytest.raises(DataError, match=r"JPEGImages/480p: folder not found"):
        read_dataset("davis", tmp_path)
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)
    with pytest.raises(DataError, match="empty dataset"):
        read_dataset("davis", tmp_path)


def test_empty_video_folder(davis_root):
    (davis_root / "JPEGImages" / "480p" / "dog").mkdir()
    with pytest.raises(DataError, match=r"480p/dog: no frames"):
        read_dataset("davis", davis_root)


def test_frame_and_mask_names_mismatch(davis_root):
    masks = davis_root / "Annotations" / "480p" / "blackswan"
    (masks / "00003.png").rename(masks / "00004.png")
    with pytest.raises(DataError, match=r"blackswan: frames and masks of video blackswan .*'00003'.*'00004'"):
        read_dataset("davis", davis_root)


def test_annotations_without_frames(davis_root):
    (davis_root / "Annotations" / "480p" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"Annotations/480p/zebra: annotations of video zebra without frames"):
        read_dataset("davis", davis_root)


def test_corrupt_frame_named(davis_root):
    (davis_root / "JPEGImages" / "480p" / "bear" / "00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bear/00002.jpg: cannot read the image"):
        read_dataset("davis", davis_root)


def test_mask_size_mismatch_named(davis_root):
    mask = np.zeros((HEIGHT + 2, WIDTH), np.uint8)
    Image.fromarray(mask).save(davis_root / "Annotations" / "480p" / "bear" / "00001.png")
    with pytest.raises(DataError, match=r"bear/00001.png: 26 x 20 pixels, but 00000.jpg of video bear is 26 x 18"):
        read_dataset("davis", davis_root)
