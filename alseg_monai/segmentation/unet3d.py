"""3D UNet of the volume-annotation baseline (the paper's Figure 2).

The paper contrasts slice-based annotation with annotating whole volumes and training
a 3D network on them. This is MONAI's residual :class:`monai.networks.nets.UNet` with
``spatial_dims=3`` and the widths of the 2D UNet. Cardiac MRI stacks are thin (about
ten slices) and strongly anisotropic, so by default the encoder halves the in-plane
size only and never the depth: any number of slices D works, and H, W must be
divisible by 2**(levels - 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import UNet

from ..errors import ConfigError, DataError

__all__ = ["UNet3D"]


class UNet3D(UNet):
    """MONAI 3D UNet for whole-volume training.

    Args:
        in_channels: image channels C_in.
        num_classes: output classes K, background included.
        channels: widths per level (default that of the 2D UNet).
        strides: downsampling per level transition, one int or (sx, sy, sz) each;
            default in-plane only, ``((2, 2, 1),) * 4``.
        num_res_units: residual units per block (MONAI's UNet).
        dropout: dropout rate of every block.

    Shapes: ``forward`` (B, C_in, H, W, D) -> (B, K, H, W, D) logits.

    Raises:
        ConfigError: strides that do not match the levels.
        DataError: an input that is not (B, C_in, H, W, D) or whose size is not a
            multiple of the total downsampling.
    """

    spatial_dims = 3

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        strides: Sequence[int | Sequence[int]] = ((2, 2, 1), (2, 2, 1), (2, 2, 1), (2, 2, 1)),
        num_res_units: int = 2,
        dropout: float = 0.0,
    ) -> None:
        if len(strides) != len(channels) - 1:
            raise ConfigError(f"strides: expected {len(channels) - 1} entries for channels {tuple(channels)}, "
                              f"got {tuple(strides)}")
        super().__init__(
            spatial_dims=3, in_channels=in_channels, out_channels=num_classes, channels=tuple(channels),
            strides=tuple(strides), num_res_units=num_res_units, norm="batch", dropout=dropout,
        )
        self.num_classes = num_classes
        factor = torch.ones(3, dtype=torch.long)
        for stride in strides:
            factor *= torch.as_tensor(stride, dtype=torch.long).expand(3)
        self.size_multiple = tuple(int(f) for f in factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise DataError(f"x: expected a (B, {self.in_channels}, H, W, D) volume batch, got shape {tuple(x.shape)}")
        if any(size % m for size, m in zip(x.shape[2:], self.size_multiple)):
            raise DataError(f"x: spatial size {tuple(x.shape[2:])} must be a multiple of {self.size_multiple} "
                            "(the network's total downsampling)")
        return super().forward(x)
