"""SimCLR encoder: ResNet-18 with the paper's projection head (Sec. 3.2.1).

The 512-d pooled ResNet-18 features are the embeddings g(x) that K-Center Greedy
uses; the 64-d projection only feeds the contrastive loss (Chen et al., SimCLR).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from monai.networks.nets import resnet18
from torch import nn

from ..errors import ConfigError, DataError

__all__ = ["SimCLREncoder"]

_CONV1 = "backbone.conv1.weight"


class SimCLREncoder(nn.Module):
    """ResNet-18 backbone + projection head Linear(F, F, no bias) - ReLU - Linear(F, P, no bias).

    The backbone is MONAI's 2D ResNet-18 laid out like torchvision's (7x7 stride-2 first
    convolution, max-pool, conv + BN shortcuts without bias), so torchvision ResNet-18
    weights load into it by name.

    Args:
        in_channels: image channels (1 for MR/CT, 3 for DAVIS video frames).
        feature_dim: width F of the pooled backbone features and of the head's hidden
            layer; 512 is the standard ResNet-18. Another multiple of 8 scales the width
            of every layer by F / 512 (a smaller network for quick runs).
        projection_dim: output width P of the projection head (64 in the paper).
        weights_path: optional local file with weights, see :meth:`load_weights`.

    Shapes: input (B, in_channels, H, W); :meth:`features` (B, feature_dim);
    :meth:`forward` (B, projection_dim).
    """

    def __init__(
        self,
        in_channels: int = 1,
        feature_dim: int = 512,
        projection_dim: int = 64,
        weights_path: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if feature_dim < 8 or feature_dim % 8 or projection_dim < 1 or in_channels < 1:
            raise ConfigError(
                f"SimCLREncoder: need in_channels >= 1, feature_dim a positive multiple of 8 and projection_dim >= 1, "
                f"got {in_channels}, {feature_dim}, {projection_dim}"
            )
        self.in_channels = int(in_channels)
        self.feature_dim = int(feature_dim)
        self.backbone = resnet18(
            spatial_dims=2,
            n_input_channels=self.in_channels,
            conv1_t_stride=2,
            shortcut_type="B",
            bias_downsample=False,
            feed_forward=False,
            widen_factor=feature_dim / 512,
        )
        self.projection = nn.Sequential(
            nn.Linear(feature_dim, feature_dim, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, projection_dim, bias=False),
        )
        if weights_path is not None:
            self.load_weights(weights_path)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, F) pooled backbone features (the selection embeddings)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DataError(f"SimCLREncoder: expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, projection_dim) projections for the contrastive loss."""
        return self.projection(self.features(x))

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load weights from a local ``torch.save`` file (never downloads).

        Accepted contents: a state dict of this class (as ``train_encoder`` writes),
        one under a ``"model"`` key (a training checkpoint), or a backbone-only state
        dict such as torchvision's ``resnet18`` weights (``fc.*`` is ignored, a
        3-channel first convolution is summed over channels for 1-channel input).

        Raises:
            DataError: the file is missing or unreadable, or its keys or shapes do not match.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as err:
            raise DataError(f"SimCLREncoder: cannot read weights file {path}: {err}") from err
        if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
            state = state["model"]
        if not isinstance(state, Mapping):
            raise DataError(f"SimCLREncoder: {path} holds a {type(state).__name__}, expected a state dict")
        state = self._as_encoder_state(state)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = [
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in own
            if k in state and state[k].shape != own[k].shape
        ]
        if missing or unexpected or wrong:
            raise DataError(
                f"SimCLREncoder: weights in {path} do not match the encoder (in_channels={self.in_channels}): "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                f"{'...' if len(unexpected) > 5 else ''}, shape mismatches {wrong[:5]}"
            )
        self.load_state_dict(state)

    def _as_encoder_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if any(k.startswith(("backbone.", "projection.")) for k in state):
            return dict(state)
        # A backbone-only file: keep our projection head as initialised.
        converted = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        converted.update({k: v for k, v in self.state_dict().items() if k.startswith("projection.")})
        conv1 = converted.get(_CONV1)
        if conv1 is not None and conv1.ndim == 4 and conv1.shape[1] == 3 and self.in_channels == 1:
            # ImageNet RGB filters applied to a grey image replicated over RGB.
            converted[_CONV1] = conv1.sum(dim=1, keepdim=True)
        return converted
