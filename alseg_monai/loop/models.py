"""Rebuilding a round's trained networks from their checkpoints.

A round's ``training.json`` records the network spec (``{"name", "kwargs"}`` of
:func:`~alseg_monai.segmentation.get_network`); the checkpoints hold state dicts:
``models/best_model.pt`` (the kept model) and ``models/model_<m>/best_*.pt`` (every
model's best-on-validation weights, the ensemble of model-based strategies).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError
from ..segmentation import get_network
from ..utils.io import read_json

__all__ = ["load_model", "load_round_models", "network_spec"]

_DEFAULT_NETWORK = {("slice", "full"): "unet", ("slice", "scribble"): "dmpls", ("volume", "full"): "unet3d",
                    ("volume", "scribble"): "unet3d"}


def network_spec(name: str | None, unit: str, label_kind: str, in_channels: int, num_classes: int,
                 network_kwargs: Mapping | None = None) -> dict:
    """The ``{"name", "kwargs"}`` that rebuilds a round's network."""
    name = name if name and unit == "slice" else _DEFAULT_NETWORK[(unit, label_kind)]
    return {"name": name, "kwargs": {"in_channels": int(in_channels), "num_classes": int(num_classes),
                                     **dict(network_kwargs or {})}}


def load_model(path: str | Path, spec: Mapping, device: str | torch.device = "cpu") -> nn.Module:
    """A network of ``spec`` with the state dict at ``path``, in eval mode on ``device``.

    Raises:
        DataError: a missing or unreadable checkpoint, or one of another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    network = get_network(spec["name"], **spec["kwargs"])
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as err:
        raise DataError(f"{path}: cannot load a {spec['name']} checkpoint ({err})") from err
    return network.to(device).eval()


def load_round_models(round_root: str | Path, device: str | torch.device = "cpu") -> list[nn.Module]:
    """Every model trained in a round (best-on-validation weights), in model order."""
    round_root = Path(round_root)
    spec = read_json(round_root / "training.json")["network_spec"]
    models = []
    for folder in sorted((round_root / "models").glob("model_*"), key=lambda p: int(p.name.split("_")[-1])):
        checkpoints = sorted(folder.glob("best_*.pt"))
        if not checkpoints:
            raise DataError(f"{folder}: no best_*.pt checkpoint")
        models.append(load_model(checkpoints[-1], spec, device))
    return models
