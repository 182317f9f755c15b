"""Training augmentation: label-safe, scribble padding stays unannotated, seeded, in-plane for volumes."""

from __future__ import annotations

import pytest
import torch

from alseg_monai.errors import ConfigError
from alseg_monai.segmentation import train_augmentation
from alseg_monai.segmentation.transforms import decode_ignore, encode_ignore


def _item(shape=(1, 24, 24), key="label", fill=0):
    label = torch.full(shape, fill, dtype=torch.int64)
    label[..., 6:18, 8:16] = 2
    label[..., 10:12, 4:20] = 1
    label[..., 1:3, 2:5] = 1  # breaks every symmetry of the pattern
    image = torch.rand(shape)
    return {"image": image, key: label, "id": "p_slice_0", "slice": 0}


def test_output_keys_and_types():
    out = train_augmentation("label", seed=0)(_item())
    assert set(out) == {"image", "label"}
    assert type(out["image"]) is torch.Tensor and out["image"].dtype == torch.float32
    assert type(out["label"]) is torch.Tensor and out["label"].dtype == torch.int64
    assert set(out["label"].unique().tolist()) <= {0, 1, 2}


def test_rotation_pads_scribbles_with_the_ignore_index():
    item = _item(key="scribble", fill=4)
    item["scribble"][..., :, 0] = 0  # a background stroke along the left edge
    transform = train_augmentation("scribble", ignore_index=4, rotate_degrees=45, weights=(0, 1, 0), seed=3)
    out = transform(item)["scribble"]
    assert set(out.unique().tolist()) <= {0, 1, 2, 4}
    corners = out[0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert not torch.all(out == item["scribble"])  # it did rotate
    # uncovered corners are unannotated, never background supervision
    assert (corners == 4).sum() >= 3


def test_full_mask_rotation_pads_with_background():
    out = train_augmentation("label", rotate_degrees=45, weights=(0, 1, 0), seed=3)(_item())["label"]
    assert out[0, 0, 0] == 0 and set(out.unique().tolist()) <= {0, 1, 2}


def test_encode_decode_round_trip():
    label = torch.tensor([[0, 1, 4, 3, 4]])
    assert torch.equal(encode_ignore(label, 4), torch.tensor([[1, 2, 0, 4, 0]]))
    assert torch.equal(decode_ignore(encode_ignore(label, 4), 4), label)


def test_seeded_and_varied():
    def run(seed):
        transform = train_augmentation("label", seed=seed)
        return [transform(_item())["label"] for _ in range(8)]

    first, again, other = run(1), run(1), run(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert len({tuple(t.flatten().tolist()) for t in first}) > 2


def test_volume_augmentation_acts_in_plane():
    plane = _item()
    item = {key: plane[key][..., None].repeat(1, 1, 1, 5) for key in ("image", "label")}
    for weights in ((1, 0, 0), (0, 1, 0)):
        out = train_augmentation("label", rotate_degrees=30, weights=weights, spatial_dims=3, seed=4)(item)
        assert out["label"].shape == (1, 24, 24, 5)
        assert all(torch.equal(out["label"][..., 0], out["label"][..., z]) for z in range(5))
        assert not torch.equal(out["label"], item["label"])


def test_identity_when_augmentation_is_off():
    item = _item()
    out = train_augmentation("label", weights=(0, 0, 1), seed=0)(item)
    assert torch.equal(out["label"], item["label"]) and torch.equal(out["image"], item["image"])


def test_bad_settings():
    with pytest.raises(ConfigError, match="weights"):
        train_augmentation(weights=(1, 1))
    with pytest.raises(ConfigError, match="rotate_degrees"):
        train_augmentation(rotate_degrees=400)
    with pytest.raises(ConfigError, match="spatial_dims"):
        train_augmentation(spatial_dims=4)
