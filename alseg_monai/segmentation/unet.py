"""The 2D UNet of the paper's full-label rounds and its dual-branch DMPLS twin.

The UNet is the WSL4MIS baseline used by the paper (Section 3.2.2, "we train UNet
[76]"): five encoder levels of ``channels = (16, 32, 64, 128, 256)``, each a block
conv3x3 - BatchNorm - LeakyReLU - Dropout - conv3x3 - BatchNorm - LeakyReLU with the
encoder dropout ``(0.05, 0.1, 0.2, 0.3, 0.5)``, max-pooling between levels, and a
decoder that upsamples bilinearly, concatenates the skip features and applies a block
without dropout. :class:`DualBranchUNet` is the network of DMPLS (Luo et al., MICCAI
2022) that the paper trains on scribbles: the same encoder shared by a main decoder
and an auxiliary decoder fed ``dropout2d(0.5)`` copies of the encoder features.

Both follow the segmentation-network contract of docs/design.md:
``forward(x)`` maps (B, C_in, H, W) images to (B, num_classes, H, W) logits and
``bottleneck_features(x)`` returns (B, channels[-1]) pooled deepest encoder features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from ..errors import ConfigError, DataError

__all__ = ["DualBranchUNet", "UNet2D"]

_ACT = ("leakyrelu", {"negative_slope": 0.01})
_NORM = "batch"


def _check_levels(channels: Sequence[int], dropout: Sequence[float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    channels, dropout = tuple(int(c) for c in channels), tuple(float(p) for p in dropout)
    if len(channels) < 2:
        raise ConfigError(f"channels: expected at least 2 encoder levels, got {channels}")
    if len(dropout) != len(channels):
        raise ConfigError(f"dropout: expected one rate per encoder level ({len(channels)}), got {dropout}")
    if any(c <= 0 for c in channels) or any(not 0.0 <= p < 1.0 for p in dropout):
        raise ConfigError(f"channels must be positive and dropout in [0, 1); got {channels}, {dropout}")
    return channels, dropout


def check_image_batch(x: torch.Tensor, in_channels: int, min_size: int, name: str = "x") -> None:
    """Raise :class:`DataError` unless ``x`` is a (B, in_channels, H, W) batch with H, W >= ``min_size``."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise DataError(f"{name}: expected a (B, {in_channels}, H, W) image batch, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < min_size:
        raise DataError(
            f"{name}: spatial size {tuple(x.shape[-2:])} is smaller than the network's minimum {min_size}; raise "
            "image_size, or use fewer network levels"
        )


class ConvBlock(nn.Sequential):
    """conv3x3 - BN - LeakyReLU - Dropout(p) - conv3x3 - BN - LeakyReLU, (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__(
            Convolution(2, in_channels, out_channels, kernel_size=3, act=_ACT, norm=_NORM, dropout=dropout or None,
                        adn_ordering="NAD"),
            Convolution(2, out_channels, out_channels, kernel_size=3, act=_ACT, norm=_NORM, adn_ordering="NA"),
        )


class UNetEncoder(nn.Module):
    """The UNet encoder: returns the features of every level, shallowest first.

    (B, C_in, H, W) -> [(B, channels[0], H, W), (B, channels[1], H/2, W/2), ...].
    """

    def __init__(self, in_channels: int, channels: Sequence[int], dropout: Sequence[float]) -> None:
        super().__init__()
        self.in_channels = in_channels
        widths = (in_channels, *channels)
        self.blocks = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], dropout[i]) for i in range(len(channels)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for level, block in enumerate(self.blocks):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features


class UNetDecoder(nn.Module):
    """The UNet decoder: deepest features up to (B, num_classes, H, W) logits.

    Each level reduces the deeper features with a 1x1 convolution, upsamples them
    bilinearly to the skip's size (so odd sizes work), concatenates the skip and
    applies a :class:`ConvBlock` without dropout.
    """

    def __init__(self, channels: Sequence[int], num_classes: int) -> None:
        super().__init__()
        deep_to_shallow = list(reversed(channels))
        self.reduce = nn.ModuleList(
            nn.Conv2d(deep_to_shallow[i], deep_to_shallow[i + 1], kernel_size=1) for i in range(len(channels) - 1)
        )
        self.blocks = nn.ModuleList(
            ConvBlock(2 * deep_to_shallow[i + 1], deep_to_shallow[i + 1]) for i in range(len(channels) - 1)
        )
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for reduce, block, skip in zip(self.reduce, self.blocks, reversed(features[:-1])):
            x = F.interpolate(reduce(x), size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


class UNet2D(nn.Module):
    """2D UNet of the paper's full-label rounds (WSL4MIS baseline).

    Args:
        in_channels: image channels C_in (1 for MRI / CT, 3 for video frames).
        num_classes: output classes, background included (4 for ACDC).
        channels: encoder widths, shallowest first (paper: 16-32-64-128-256).
        dropout: encoder dropout per level (paper: 0.05, 0.1, 0.2, 0.3, 0.5).

    Shapes: ``forward`` (B, C_in, H, W) -> (B, num_classes, H, W) logits;
    ``bottleneck_features`` (B, C_in, H, W) -> (B, channels[-1]).

    Raises:
        ConfigError: bad widths or dropout rates.
        DataError: an input that is not (B, C_in, H, W) or smaller than 2**(levels-1).
    """

    spatial_dims = 2

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        dropout: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5),
    ) -> None:
        super().__init__()
        channels, dropout = _check_levels(channels, dropout)
        if num_classes < 2:
            raise ConfigError(f"num_classes: expected >= 2 (background included), got {num_classes}")
        self.in_channels, self.num_classes, self.channels = in_channels, num_classes, channels
        self.min_size = 2 ** (len(channels) - 1)
        self.encoder = UNetEncoder(in_channels, channels, dropout)
        self.decoder = UNetDecoder(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.min_size)
        return self.decoder(self.encoder(x))

    def bottleneck_features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled deepest encoder features, (B, C_in, H, W) -> (B, channels[-1])."""
        check_image_batch(x, self.in_channels, self.min_size)
        return self.encoder(x)[-1].mean(dim=(2, 3))


class DualBranchUNet(UNet2D):
    """DMPLS dual-branch UNet (Luo et al., MICCAI 2022), the paper's scribble model.

    A shared :class:`UNetEncoder`, a main decoder fed the encoder features and an
    auxiliary decoder fed ``dropout2d(feature_dropout)`` copies of them, so the two
    branches disagree and their mixture gives the pseudo label (see
    :class:`~alseg_monai.segmentation.losses.DMPLSLoss`).

    Args: those of :class:`UNet2D`, plus ``feature_dropout`` (paper: 0.5).

    Shapes: in train mode ``forward`` (B, C_in, H, W) -> ((B, K, H, W) main,
    (B, K, H, W) aux) logits; in eval mode the main logits only, so inference code is
    the same for every 2D network. ``bottleneck_features`` as in :class:`UNet2D`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        dropout: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5),
        feature_dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, num_classes, channels, dropout)
        if not 0.0 <= feature_dropout < 1.0:
            raise ConfigError(f"feature_dropout: expected a rate in [0, 1), got {feature_dropout}")
        self.feature_dropout = feature_dropout
        self.aux_decoder = UNetDecoder(self.channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_image_batch(x, self.in_channels, self.min_size)
        features = self.encoder(x)
        main = self.decoder(features)
        if not self.training:
            return main
        aux = self.aux_decoder([F.dropout2d(f, p=self.feature_dropout, training=True) for f in features])
        return main, aux
