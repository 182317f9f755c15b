"""The paper's SimCLR augmentations as MONAI dictionary transforms (Sec. 3.2.1).

Random resized crop (area 0.8-1, back to the input size), horizontal flip (p 0.5),
affine (rotation 15 deg, translation 0.2 of the size, scale 0.8-1.2, x-shear 10 deg),
Gaussian blur (kernel 5, sigma 0.1-2) and random erasing (p 0.2), each with the
parameter semantics of the torchvision transforms the authors used. All act on
(C, H, W) float tensors and draw from their own MONAI random state, so
``set_random_state`` (or ``monai.data.DataLoader``'s per-worker seeding) makes them
reproducible. :class:`TwoViewsd` applies a chain twice to produce the two views.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform, RandFlipd, Randomizable, RandomizableTransform

from ..errors import ConfigError, DataError

__all__ = [
    "RandAffine2Dd",
    "RandErasingd",
    "RandGaussianBlurd",
    "RandResizedCropd",
    "paper_augmentation",
]


def _image(value: object, key: Hashable) -> torch.Tensor:
    image = torch.as_tensor(value)
    if image.ndim != 3:
        raise DataError(f"augmentation: '{key}' must have shape (C, H, W), got {tuple(image.shape)}")
    return image.as_subclass(torch.Tensor).float()


def _check_range(name: str, bounds: Sequence[float], low: float = 0.0) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not low <= lo <= hi:
        raise ConfigError(f"augmentation: {name} must be an increasing pair >= {low}, got {tuple(bounds)}")
    return lo, hi


class _RandDictTransform(RandomizableTransform, MapTransform):
    """Same random draw applied to every key of a sample (e.g. image and its views' masks)."""

    def __init__(self, keys: KeysCollection, prob: float, allow_missing_keys: bool = False) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"{type(self).__name__}: prob must be in [0, 1], got {prob}")
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        image = _image(d[first], first)
        self.randomize(None)
        if not self._do_transform:
            return d
        params = self.draw(image.shape[-2:])
        for key in self.key_iterator(d):
            d[key] = self.apply(_image(d[key], key), params)
        return d

    @abstractmethod
    def draw(self, spatial: torch.Size) -> dict:
        """Random parameters for an image of spatial size (H, W)."""

    @abstractmethod
    def apply(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        """Transform one (C, H, W) image with ``params``."""


def _draw_box(
    rng: np.random.RandomState, h: int, w: int, scale: tuple, ratio: tuple
) -> tuple[int, int, int, int] | None:
    """torchvision's box draw: area fraction in ``scale``, log-uniform aspect in ``ratio``; 10 tries."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        bw = int(round(math.sqrt(area * aspect)))
        bh = int(round(math.sqrt(area / aspect)))
        if 0 < bw <= w and 0 < bh <= h:
            top = int(rng.randint(0, h - bh + 1))
            left = int(rng.randint(0, w - bw + 1))
            return top, left, bh, bw
    return None


class RandResizedCropd(_RandDictTransform):
    """Crop a random box (area fraction ``scale``, aspect ``ratio``) and resize it back to (H, W).

    Like torchvision's ``RandomResizedCrop`` with the output size equal to the input
    size; after 10 failed draws the whole image is kept.
    """

    def __init__(
        self,
        keys: KeysCollection,
        scale: Sequence[float] = (0.8, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        prob: float = 1.0,
        mode: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        self.scale = _check_range("scale", scale)
        self.ratio = _check_range("ratio", ratio)
        if self.scale[1] > 1 or self.scale[0] <= 0 or self.ratio[0] <= 0:
            raise ConfigError(f"RandResizedCropd: need 0 < scale <= 1 and ratio > 0, got {scale}, {ratio}")
        self.mode = mode

    def draw(self, spatial: torch.Size) -> dict:
        h, w = int(spatial[0]), int(spatial[1])
        return {"box": _draw_box(self.R, h, w, self.scale, self.ratio) or (0, 0, h, w)}

    def apply(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        top, left, bh, bw = params["box"]
        crop = image[None, :, top : top + bh, left : left + bw]
        align = False if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(crop, size=tuple(image.shape[-2:]), mode=self.mode, align_corners=align)[0]


class RandAffine2Dd(_RandDictTransform):
    """Random rotation, translation, isotropic scale and x-shear about the image centre.

    The parameters mean what they mean in torchvision's ``RandomAffine``: rotation
    uniform in ``[-rotate, rotate]`` degrees, translation uniform in ``[-translate,
    translate]`` times the width / height, one scale factor uniform in ``scale``, shear
    parallel to the x axis uniform in ``[-shear, shear]`` degrees. Outside pixels are 0.
    """

    def __init__(
        self,
        keys: KeysCollection,
        rotate: float = 15.0,
        translate: float = 0.2,
        scale: Sequence[float] = (0.8, 1.2),
        shear: float = 10.0,
        prob: float = 1.0,
        mode: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        if rotate < 0 or not 0 <= translate <= 1 or not 0 <= shear < 90:
            raise ConfigError(
                "RandAffine2Dd: need rotate >= 0, 0 <= translate <= 1, 0 <= shear < 90, "
                f"got {rotate}, {translate}, {shear}"
            )
        self.rotate, self.translate, self.shear = float(rotate), float(translate), float(shear)
        self.scale = _check_range("scale", scale, low=1e-6)
        self.mode = mode

    def draw(self, spatial: torch.Size) -> dict:
        h, w = float(spatial[0]), float(spatial[1])
        angle = math.radians(self.R.uniform(-self.rotate, self.rotate))
        shear = math.radians(self.R.uniform(-self.shear, self.shear))
        tx = self.R.uniform(-self.translate, self.translate) * w
        ty = self.R.uniform(-self.translate, self.translate) * h
        s = self.R.uniform(*self.scale)
        # Forward map in pixel units about the centre: translate . rotate . shear . scale.
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        shearing = np.array([[1.0, -math.tan(shear)], [0.0, 1.0]])
        forward = rotation @ shearing * s
        # grid_sample needs output -> input in normalised coordinates: invert, then rescale.
        inverse = np.linalg.inv(forward)
        to_pixels = np.diag([w / 2, h / 2])
        theta = np.zeros((2, 3))
        theta[:, :2] = np.linalg.inv(to_pixels) @ inverse @ to_pixels
        theta[:, 2] = -np.linalg.inv(to_pixels) @ inverse @ np.array([tx, ty])
        return {"theta": torch.as_tensor(theta, dtype=torch.float32)}

    def apply(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        theta = params["theta"].to(image.device)[None]
        grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
        return F.grid_sample(image[None], grid, mode=self.mode, padding_mode="zeros", align_corners=False)[0]


class RandGaussianBlurd(_RandDictTransform):
    """Isotropic Gaussian blur, sigma uniform in ``sigma``, ``kernel_size`` taps, reflect padding."""

    def __init__(
        self,
        keys: KeysCollection,
        kernel_size: int = 5,
        sigma: Sequence[float] = (0.1, 2.0),
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"RandGaussianBlurd: kernel_size must be a positive odd number, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.sigma = _check_range("sigma", sigma, low=1e-6)

    def draw(self, spatial: torch.Size) -> dict:
        sigma = self.R.uniform(*self.sigma)
        x = torch.arange(self.kernel_size, dtype=torch.float32) - self.kernel_size // 2
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        return {"kernel": kernel / kernel.sum()}

    def apply(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        c, pad = image.shape[0], self.kernel_size // 2
        kernel = params["kernel"].to(image)
        # Reflect padding needs pad < size; tiny images fall back to edge replication.
        mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
        x = F.pad(image[None], (pad, pad, pad, pad), mode=mode)
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return x[0]


class RandErasingd(_RandDictTransform):
    """Set a random box (area fraction ``scale``, aspect ``ratio``) to ``value``, as torchvision's ``RandomErasing``."""

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.2,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob, allow_missing_keys)
        self.scale = _check_range("scale", scale)
        self.ratio = _check_range("ratio", ratio)
        if self.scale[1] > 1 or self.ratio[0] <= 0:
            raise ConfigError(f"RandErasingd: need scale <= 1 and ratio > 0, got {scale}, {ratio}")
        self.value = float(value)

    def draw(self, spatial: torch.Size) -> dict:
        return {"box": _draw_box(self.R, int(spatial[0]), int(spatial[1]), self.scale, self.ratio)}

    def apply(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        if params["box"] is None:
            return image
        top, left, bh, bw = params["box"]
        image = image.clone()
        image[:, top : top + bh, left : left + bw] = self.value
        return image


def paper_augmentation(
    keys: KeysCollection = "image",
    crop_scale: Sequence[float] = (0.8, 1.0),
    flip_prob: float = 0.5,
    rotate: float = 15.0,
    translate: float = 0.2,
    scale: Sequence[float] = (0.8, 1.2),
    shear: float = 10.0,
    affine_prob: float = 1.0,
    blur_kernel: int = 5,
    blur_sigma: Sequence[float] = (0.1, 2.0),
    blur_prob: float = 1.0,
    erase_prob: float = 0.2,
) -> Compose:
    """The augmentation chain of the paper's encoder training, one view's worth.

    Order: resized crop, horizontal flip (the W axis of (C, H, W)), affine, blur, erasing.
    Defaults are the paper's settings; the paper gives no probability for the affine
    and blur steps, so they are always applied.
    """
    return Compose(
        [
            RandResizedCropd(keys, scale=crop_scale),
            RandFlipd(keys, prob=flip_prob, spatial_axis=1),
            RandAffine2Dd(keys, rotate=rotate, translate=translate, scale=scale, shear=shear, prob=affine_prob),
            RandGaussianBlurd(keys, kernel_size=blur_kernel, sigma=blur_sigma, prob=blur_prob),
            RandErasingd(keys, prob=erase_prob),
        ]
    )


class TwoViewsd(Randomizable, MapTransform):
    """Two independently augmented views of ``key``: ``d[view_keys[0]]``, ``d[view_keys[1]]``.

    The source key is removed (training only needs the views); other keys (ids,
    patient, volume, slice) pass through. Views are plain (C, H, W) float tensors.

    Args:
        key: the image key.
        augmentation: a dictionary transform acting on ``key`` (e.g. :func:`paper_augmentation`);
            default: the paper's chain.
        view_keys: names of the two views.
    """

    def __init__(
        self,
        key: str = "image",
        augmentation: Compose | None = None,
        view_keys: Sequence[str] = ("view_1", "view_2"),
    ) -> None:
        MapTransform.__init__(self, key)
        if len(view_keys) != 2 or view_keys[0] == view_keys[1]:
            raise ConfigError(f"TwoViewsd: view_keys must be two distinct names, got {view_keys}")
        self.key = key
        self.augmentation = augmentation if augmentation is not None else paper_augmentation(key)
        self.view_keys = tuple(view_keys)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> TwoViewsd:
        super().set_random_state(seed, state)
        self.augmentation.set_random_state(seed=int(self.R.randint(2**31 - 1)))
        return self

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if self.key not in d:
            raise DataError(f"TwoViewsd: sample has no '{self.key}' key (keys {sorted(map(str, d))})")
        image = _image(d.pop(self.key), self.key)
        for view in self.view_keys:
            out = self.augmentation({self.key: image.clone()})[self.key]
            d[view] = out.as_subclass(torch.Tensor) if isinstance(out, torch.Tensor) else torch.as_tensor(out)
        return d
