"""A fresh network from a component, its weights drawn from a seed.

Every model of every round, and every encoder, starts as a fresh copy of its bundle
component (``network_def``, ``encoder_def``), so two models with one seed are equal and
two seeds give independent draws.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["build_network", "construct"]


def build_network(network_def: nn.Module | Callable[[], nn.Module], seed: int) -> nn.Module:
    """A fresh network of ``network_def`` whose weights are drawn from ``seed``.

    ``network_def`` is a factory (a callable that is not a module, e.g. a bundle component
    with ``"_mode_": "callable"``), called under the seed, or a module, deep-copied with every
    layer's ``reset_parameters()`` called under the seed in module order. The two agree for
    networks that initialise their layers only in the layers' own constructors (UNet2D,
    DMPLS, MONAI's BasicUNet); give the others as a factory, whose custom initialisation
    a reset would skip. The caller's torch random stream is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return construct(network_def)


def construct(network_def: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    """:func:`build_network` drawing from the global torch stream, which the caller seeded.

    Raises:
        ConfigError: a factory that does not return a module.
    """
    if not isinstance(network_def, nn.Module):
        if not callable(network_def):
            raise ConfigError(f"network_def: expected a torch.nn.Module or a factory of one, got {network_def!r}")
        network = network_def()
        if not isinstance(network, nn.Module):
            raise ConfigError(f"network_def: the factory returned a {type(network).__name__}, expected a "
                              "torch.nn.Module")
        return network
    network = copy.deepcopy(network_def)
    for module in network.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    return network
