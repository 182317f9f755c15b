"""The paper's augmentations as MONAI dictionary transforms, and the two-view wrapper."""

from __future__ import annotations

import math

import pytest
import torch

from alseg_monai.contrastive import (
    RandAffine2Dd,
    RandErasingd,
    RandGaussianBlurd,
    RandResizedCropd,
    paper_augmentation,
)
from alseg_monai.contrastive.augment import TwoViewsd
from alseg_monai.errors import ConfigError, DataError


def square(size=32):
    image = torch.zeros(1, size, size)
    image[:, size // 4 : size // 2, size // 8 : size // 2] = 1.0
    return image


def test_two_views_differ_keep_shape_range_and_metadata():
    views = TwoViewsd("image").set_random_state(0)
    out = views({"image": square(), "id": "v_slice_0", "patient": "p"})
    assert set(out) == {"view_1", "view_2", "id", "patient"}
    for key in ("view_1", "view_2"):
        assert type(out[key]) is torch.Tensor and out[key].shape == (1, 32, 32)
        assert out[key].min() >= 0 and out[key].max() <= 1 + 1e-6
    assert not torch.allclose(out["view_1"], out["view_2"])


def test_same_seed_same_views_other_seed_other_views():
    a = TwoViewsd("image").set_random_state(7)
    b = TwoViewsd("image").set_random_state(7)
    c = TwoViewsd("image").set_random_state(8)
    first, second, third = (t({"image": square()}) for t in (a, b, c))
    assert torch.equal(first["view_1"], second["view_1"]) and torch.equal(first["view_2"], second["view_2"])
    assert not torch.equal(first["view_1"], third["view_1"])


def test_zero_strength_settings_are_the_identity():
    image = torch.rand(2, 24, 20)
    chain = paper_augmentation(
        crop_scale=(1.0, 1.0), flip_prob=0.0, rotate=0.0, translate=0.0, scale=(1.0, 1.0), shear=0.0, blur_prob=0.0, erase_prob=0.0
    )
    crop = RandResizedCropd("image", scale=(1.0, 1.0), ratio=(20 / 24, 20 / 24))
    for transform in (chain, crop):
        transform.set_random_state(0)
        assert torch.allclose(torch.as_tensor(transform({"image": image})["image"]), image, atol=1e-5)


def test_affine_translation_moves_content_by_the_drawn_fraction():
    image = square(64)
    transform = RandAffine2Dd("image", rotate=0.0, translate=0.2, scale=(1.0, 1.0), shear=0.0).set_random_state(3)
    out = transform({"image": image})["image"]
    assert out.sum().item() == pytest.approx(image.sum().item(), rel=0.02)
    shift = [(torch.nonzero(t[0] > 0.5).float().mean(0)) for t in (image, out)]
    moved = shift[1] - shift[0]
    assert moved.abs().max() <= 0.2 * 64 + 1 and moved.abs().max() > 0


def test_affine_scale_changes_area_by_its_square():
    image = square(64)
    transform = RandAffine2Dd("image", rotate=0.0, translate=0.0, scale=(1.2, 1.2), shear=0.0).set_random_state(0)
    out = transform({"image": image})["image"]
    assert out.sum().item() == pytest.approx(image.sum().item() * 1.44, rel=0.05)


def test_blur_keeps_constants_and_smooths_edges():
    blur = RandGaussianBlurd("image", sigma=(1.5, 1.5)).set_random_state(0)
    flat = torch.full((1, 16, 16), 0.4)
    assert torch.allclose(blur({"image": flat})["image"], flat, atol=1e-6)
    edge = square()
    out = blur({"image": edge})["image"]
    assert out.sum().item() == pytest.approx(edge.sum().item(), rel=0.02)
    assert ((out > 0.01) & (out < 0.99)).sum() > ((edge > 0.01) & (edge < 0.99)).sum()


def test_erasing_box_area_within_range():
    erase = RandErasingd("image", prob=1.0, scale=(0.1, 0.2), ratio=(0.5, 2.0), value=0.0).set_random_state(0)
    for _ in range(20):
        out = erase({"image": torch.ones(1, 40, 40)})["image"]
        erased = (out == 0).sum().item() / 1600
        assert 0.1 - 0.03 <= erased <= 0.2 + 0.03


def test_crop_scale_zooms_in():
    image = torch.linspace(0, 1, 32).repeat(1, 32, 1)
    crop = RandResizedCropd("image", scale=(0.5, 0.5), ratio=(1.0, 1.0)).set_random_state(0)
    out = crop({"image": image})["image"]
    width = round(math.sqrt(0.5) * 32)
    assert out.shape == image.shape
    assert (out[0, 0, -1] - out[0, 0, 0]).item() == pytest.approx((width - 1) / 31, abs=0.05)


def test_bad_settings_and_inputs_raise():
    with pytest.raises(ConfigError):
        RandResizedCropd("image", scale=(0.9, 0.5))
    with pytest.raises(ConfigError):
        RandGaussianBlurd("image", kernel_size=4)
    with pytest.raises(ConfigError):
        RandErasingd("image", prob=1.5)
    with pytest.raises(ConfigError):
        TwoViewsd("image", view_keys=("a", "a"))
    with pytest.raises(DataError, match=r"\(C, H, W\).*\(32, 32\)"):
        RandAffine2Dd("image")({"image": torch.zeros(32, 32)})
    with pytest.raises(DataError, match="no 'image'"):
        TwoViewsd("image")({"img": torch.zeros(1, 8, 8)})
