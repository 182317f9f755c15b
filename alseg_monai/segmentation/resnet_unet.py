"""ResNet-50-backbone UNet of the paper's pretrained-model experiments.

The paper (Section 3.2.2 and Table 3) also trains "a pre-trained segmentation model
with a ResNet-50 backbone", with medical-image weights for medical data and ImageNet
weights for DAVIS, at budgets of 1-5 %. This is MONAI's
:class:`~monai.networks.nets.FlexibleUNet` with a ``resnet50`` encoder, never
downloading anything: weights come from a local file or the network starts from a
random initialisation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.nets import FlexibleUNet
from torch import nn

from ..errors import DataError
from .unet import check_image_batch

__all__ = ["ResNet50UNet"]

_WRAPPER_KEYS = ("state_dict", "network", "model")


class ResNet50UNet(FlexibleUNet):
    """UNet with a ResNet-50 encoder (MONAI ``FlexibleUNet``), optionally initialised from a local file.

    Args:
        in_channels: image channels C_in.
        num_classes: output classes K, background included.
        weights_path: a ``torch.save`` file holding either the whole network's state
            dict or a ResNet-50 encoder's (torchvision / MONAI key names, e.g.
            ``conv1.weight``, ``layer1.0.conv1.weight``; ``fc.*`` is dropped). See
            :func:`load_pretrained_weights`. ``None``: random initialisation.
        decoder_channels: decoder widths, deepest first.

    Shapes: ``forward`` (B, C_in, H, W) -> (B, K, H, W) logits (any H, W: inputs are
    zero-padded to a multiple of 32 and the logits cropped back);
    ``bottleneck_features`` (B, C_in, H, W) -> (B, 2048).

    Raises:
        DataError: a missing or unreadable weights file, or one whose keys or shapes do
            not match the network.
    """

    spatial_dims = 2
    size_multiple = 32

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 4,
        weights_path: str | os.PathLike | None = None,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
    ) -> None:
        super().__init__(
            in_channels=in_channels, out_channels=num_classes, backbone="resnet50", pretrained=False,
            decoder_channels=decoder_channels, spatial_dims=2,
        )
        self.in_channels, self.num_classes = in_channels, num_classes
        if weights_path is not None:
            load_pretrained_weights(self, weights_path)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # The encoder halves the size five times and the decoder only mends off-by-one
        # mismatches, so pad (bottom / right, with 0 = background) to a multiple of 32.
        check_image_batch(x, self.in_channels, 1)
        height, width = x.shape[-2:]
        return F.pad(x, (0, -width % self.size_multiple, 0, -height % self.size_multiple))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return super().forward(self._pad(x))[..., :height, :width]

    def bottleneck_features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled ResNet-50 stage-4 features, (B, C_in, H, W) -> (B, 2048)."""
        return self.encoder(self._pad(x))[-1].mean(dim=(2, 3))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"weights_path: {path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise DataError(f"weights_path: {path}: not a readable torch state dict ({err})") from err
    while isinstance(obj, Mapping) and len(obj) and any(k in obj for k in _WRAPPER_KEYS):
        obj = next(obj[k] for k in _WRAPPER_KEYS if k in obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DataError(f"weights_path: {path}: expected a state dict of tensors (optionally under "
                        f"{'/'.join(_WRAPPER_KEYS)}), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _adapt_first_conv(state: dict[str, torch.Tensor], key: str, in_channels: int) -> None:
    # ImageNet weights expect RGB; summing over the colour axis gives the same response
    # to a grey image repeated on three channels, the usual way to reuse them on MRI / CT.
    weight = state.get(key)
    if weight is None or weight.ndim != 4 or weight.shape[1] == in_channels:
        return
    if weight.shape[1] == 3 and in_channels == 1:
        state[key] = weight.sum(dim=1, keepdim=True)
    elif weight.shape[1] == 1:
        state[key] = weight.repeat(1, in_channels, 1, 1) / in_channels


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                  for k in sorted(set(own) & set(state)) if own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        raise DataError(
            f"weights_path: {path}: keys do not match the {what} "
            f"(missing {len(missing)}: {missing[:5]}; unexpected {len(unexpected)}: {unexpected[:5]}; "
            f"shape mismatches {len(mismatched)}: {mismatched[:5]})"
        )
    module.load_state_dict(state, strict=True)


def load_pretrained_weights(model: ResNet50UNet, path: str | os.PathLike) -> None:
    """Load a local weights file into ``model`` (whole network or encoder only).

    A state dict with ``decoder.*`` or ``segmentation_head.*`` keys is a whole
    network and must match it exactly. Otherwise it is a ResNet-50 encoder (keys
    optionally prefixed ``encoder.``; a classifier ``fc.*`` is dropped), and its first
    convolution is adapted between 3-channel and 1-channel inputs.

    Raises:
        DataError: missing / unreadable file, wrong keys or shapes (the message lists them).
    """
    path = Path(path)
    state = _read_state_dict(path)
    if any(k.startswith(("decoder.", "segmentation_head.")) for k in state):
        _adapt_first_conv(state, "encoder.conv1.weight", model.in_channels)
        _load_strict(model, state, path, "ResNet50UNet network")
        return
    encoder_state = {k.removeprefix("encoder."): v for k, v in state.items()}
    encoder_state = {k: v for k, v in encoder_state.items() if not k.startswith("fc.")}
    _adapt_first_conv(encoder_state, "conv1.weight", model.in_channels)
    _load_strict(model.encoder, encoder_state, path, "ResNet-50 encoder")
