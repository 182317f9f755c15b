"""Monte Carlo dropout inference (Gal and Ghahramani, 2016) for the BALD baseline.

:func:`mc_dropout_mode` puts a network in eval mode (BatchNorm and every other
normalisation use their running statistics, which stay untouched) and switches only its
dropout layers back on. :func:`mc_dropout_bald` runs T stochastic passes over each batch
of slices, with no augmentation, accumulating the mean probability and the mean entropy
so memory stays O(batch) instead of O(T x N x C x H x W); its scores equal
:func:`~alseg_monai.selection.scores.bald_score` of the stacked samples.

Distributed (``torchrun``): each rank scores a contiguous share of the rows with its own
dropout stream (:func:`~alseg_monai.utils.rank_seed`) and every rank returns all scores
in row order. The Monte Carlo samples therefore depend on the number of ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..utils import gather_rows, rank_seed
from .inference import class_probabilities, eval_mode, iterate_batches, seeded, shard_rows
from .scores import entropy_map

__all__ = ["mc_dropout_bald"]

DROPOUT_LAYERS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with dropout layers active, without gradients; modes are restored after.

    Raises:
        ConfigError: the network has no dropout layer, so MC samples would all agree.
    """
    dropouts = [module for module in model.modules() if isinstance(module, DROPOUT_LAYERS)]
    if not dropouts:
        raise ConfigError(
            f"{type(model).__name__} has no dropout layer ({', '.join(c.__name__ for c in DROPOUT_LAYERS)}); "
            "MC-dropout BALD needs one"
        )
    with eval_mode(model):
        for module in dropouts:
            module.train()
        yield


def mc_dropout_bald(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    rows: np.ndarray | None = None,
    num_samples: int = 40,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> np.ndarray:
    """BALD score per slice from ``num_samples`` MC-dropout passes of ``model``.

    Args:
        model: a segmentation network with dropout layers (moved to ``device``).
        images: (N, C_in, H, W) preprocessed slices.
        rows: which slices to score (default: all).
        num_samples: T stochastic passes (paper: 40).
        batch_size: slices per pass.
        device: where to run.
        seed: seeds the dropout masks (the global torch RNG is left as it was; per rank
            when distributed).

    Returns:
        (len(rows),) float64 mean over pixels of H[mean_t p_t] - mean_t H[p_t].

    Raises:
        ConfigError: ``num_samples`` < 2, or a network without dropout.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 2:
        raise ConfigError(f"num_samples: expected an integer >= 2 MC-dropout passes, got {num_samples!r}")
    device = torch.device(device)
    model = model.to(device)
    share, local_rows = shard_rows(images, rows)
    out = np.empty(len(share), dtype=np.float64)
    with seeded(rank_seed(seed), device), mc_dropout_mode(model):
        for positions, x in iterate_batches(images, local_rows, batch_size, device):
            mean_probs, mean_entropy = None, None
            for _ in range(num_samples):
                probs = class_probabilities(model, x).double()
                mean_probs = probs if mean_probs is None else mean_probs + probs
                entropy = entropy_map(probs, 1)
                mean_entropy = entropy if mean_entropy is None else mean_entropy + entropy
            information = entropy_map(mean_probs / num_samples, 1) - mean_entropy / num_samples
            out[positions] = information.flatten(1).mean(1).cpu().numpy()
    return gather_rows(out, share, len(images) if rows is None else len(rows))
