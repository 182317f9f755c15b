"""Rebuilding a round's trained networks from their checkpoints.

A round's checkpoints hold state dicts: ``models/best_model.pt`` (the kept model) and
``models/model_<m>/best_*.pt`` (every model's best-on-validation weights, the ensemble
of model-based strategies). They load strictly into a fresh network of the component
that trained them (``network_def``, see :meth:`~alseg_monai.segmentation.RoundTrainer.build`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import DataError

__all__ = ["load_round_models", "load_state"]


def load_state(network: nn.Module, path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """``network`` with the state dict at ``path`` (loaded strictly), in eval mode on ``device``.

    Raises:
        DataError: a missing or unreadable checkpoint, or one of another architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as err:
        raise DataError(f"{path}: does not load into a {type(network).__name__} (the network_def of this run?): "
                        f"{err}") from err
    return network.to(device).eval()


def load_round_models(round_root: str | Path, build: Callable[[], nn.Module],
                      device: str | torch.device = "cpu") -> list[nn.Module]:
    """Every model trained in a round (best-on-validation weights), in model order;
    ``build()`` gives a fresh network of the round's architecture."""
    round_root = Path(round_root)
    models = []
    for folder in sorted((round_root / "models").glob("model_*"), key=lambda p: int(p.name.split("_")[-1])):
        checkpoints = sorted(folder.glob("best_*.pt"))
        if not checkpoints:
            raise DataError(f"{folder}: no best_*.pt checkpoint")
        models.append(load_state(build(), checkpoints[-1], device))
    return models
