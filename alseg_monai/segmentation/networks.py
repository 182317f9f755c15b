"""Segmentation networks by name, so a bundle config or the AL loop can pick one with a string."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .resnet_unet import ResNet50UNet
from .unet import DualBranchUNet, UNet2D
from .unet3d import UNet3D

__all__ = []

NETWORKS: dict[str, type[nn.Module]] = {
    "unet": UNet2D,
    "dmpls": DualBranchUNet,
    "unet3d": UNet3D,
    "resnet50_unet": ResNet50UNet,
}


def get_network(name: str, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` (``unet``, ``dmpls``, ``unet3d``, ``resnet50_unet``).

    ``kwargs`` go to the network's constructor (e.g. ``in_channels``, ``num_classes``).

    Raises:
        ConfigError: an unknown name or a keyword the network does not take.
    """
    if name not in NETWORKS:
        raise ConfigError(f"network: unknown name {name!r}; expected one of {sorted(NETWORKS)}")
    try:
        return NETWORKS[name](**kwargs)
    except TypeError as err:
        raise ConfigError(f"network {name!r}: invalid arguments {sorted(kwargs)} ({err})") from err
