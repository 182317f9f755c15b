"""Batched, deterministic inference of the previous round's networks over pool slices.

Scoring never augments: every model and every pass sees exactly the preprocessed slices
of :meth:`SelectionContext.images`, so the pixel maps of ensemble members align (the
original code's train-time augmentation at scoring misaligned them). Networks run in
eval mode (BatchNorm uses its running statistics, dropout is off); scores are reduced
batch by batch, so memory stays O(batch) whatever the pool size.

Distributed (``torchrun``): each rank scores a contiguous share of the rows
(:func:`shard_rows`) and every rank returns the scores of all rows, in row order
(:func:`~alseg_monai.utils.gather_rows`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..utils import gather_rows, shard_indices
from .scores import entropy_map, vote_ratio_map

__all__ = [
    "bottleneck_features",
    "ensemble_entropy",
    "ensemble_variance_ratio",
]


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def iterate_batches(
    images: np.ndarray | torch.Tensor, rows: np.ndarray | None, batch_size: int, device: torch.device
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(positions, batch)``: (B, C, H, W) float32 batches of ``images[rows]`` on ``device``.

    ``positions`` indexes ``rows`` (or the pool when ``rows`` is None), so scores can be
    written into an output array of ``len(rows)``.
    """
    batch_size = _check_batch_size(batch_size)
    total = len(images) if rows is None else len(rows)
    for start in range(0, total, batch_size):
        positions = slice(start, min(start + batch_size, total))
        index = positions if rows is None else np.asarray(rows[positions])
        batch = images[index]
        batch = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        yield positions, batch.to(device=device, dtype=torch.float32)


def shard_rows(images: np.ndarray | torch.Tensor, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """This rank's share of the rows to score: ``(positions, local_rows)``.

    ``positions`` (int64) index the output of ``len(rows)`` (or ``len(images)`` when
    ``rows`` is None) and are a contiguous block (:func:`~alseg_monai.utils.shard_indices`);
    ``local_rows`` are the image rows to score for them (``rows`` itself when this process
    scores everything).
    """
    total = len(images) if rows is None else len(rows)
    positions = shard_indices(total)
    if len(positions) == total:
        return positions, rows
    return positions, positions if rows is None else np.asarray(rows)[positions]


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG (CPU, and ``device`` when CUDA) for the block, then restore it, so
    dropout masks and weight inits are reproducible without touching the caller's streams."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# Not monai.networks.eval_mode: it restores only a top-level training flag, so dropout that
# mc_dropout_mode switches on inside a model that was in eval mode would stay on afterwards.
@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode (restoring each module's own mode afterwards), without gradients."""
    saved = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in saved:
            module.train(training)


def class_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax over classes of ``model(x)``: (B, C_in, H, W) -> (B, C, H, W).

    A dual-branch network that returns ``(main, aux)`` contributes its main branch.

    Raises:
        DataError: the network's output is not (B, C, H, W) logits matching the input.
    """
    logits = model(x)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.ndim != x.ndim or logits.shape[0] != x.shape[0] or logits.shape[2:] != x.shape[2:]:
        raise DataError(
            f"segmentation network output: expected (B, C, H, W) logits for input {tuple(x.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    return torch.softmax(logits.float(), dim=1)


def _prepare(models: Sequence[nn.Module], device: torch.device) -> list[nn.Module]:
    if not models:
        raise ConfigError("expected at least one trained network, got none")
    return [model.to(device) for model in models]


def ensemble_entropy(
    models: Sequence[nn.Module],
    images: np.ndarray | torch.Tensor,
    rows: np.ndarray | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Mean entropy of the ensemble-mean prediction per slice.

    Args:
        models: M >= 1 networks (moved to ``device``).
        images: (N, C_in, H, W) slices.
        rows: which slices to score (default: all).
        batch_size: slices per forward pass.
        device: where to run.

    Returns:
        (len(rows),) float64 mean over pixels of H[mean_m p_m].
    """
    device = torch.device(device)
    models = _prepare(models, device)
    share, local_rows = shard_rows(images, rows)
    out = np.empty(len(share), dtype=np.float64)
    with eval_mode(*models):
        for positions, x in iterate_batches(images, local_rows, batch_size, device):
            mean = sum(class_probabilities(model, x) for model in models) / len(models)
            out[positions] = entropy_map(mean, 1).flatten(1).mean(1).double().cpu().numpy()
    return gather_rows(out, share, len(images) if rows is None else len(rows))


def ensemble_variance_ratio(
    models: Sequence[nn.Module],
    images: np.ndarray | torch.Tensor,
    rows: np.ndarray | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Variation ratio per slice over an ensemble, streamed (see
    :func:`~alseg_monai.selection.scores.variance_ratio_score`).

    Returns:
        (len(rows),) float64 mean over pixels of 1 - (votes of the modal class) / M.
    """
    device = torch.device(device)
    models = _prepare(models, device)
    share, local_rows = shard_rows(images, rows)
    out = np.empty(len(share), dtype=np.float64)
    with eval_mode(*models):
        for positions, x in iterate_batches(images, local_rows, batch_size, device):
            votes = None
            for model in models:
                probs = class_probabilities(model, x)
                one_vote = torch.zeros_like(probs, dtype=torch.int32).scatter_(1, probs.argmax(1, keepdim=True), 1)
                votes = one_vote if votes is None else votes + one_vote
            out[positions] = vote_ratio_map(votes, len(models)).flatten(1).mean(1).cpu().numpy()
    return gather_rows(out, share, len(images) if rows is None else len(rows))


def bottleneck_features(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    rows: np.ndarray | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``model.bottleneck_features`` of the slices: (len(rows), F) float32.

    Raises:
        DataError: the network has no ``bottleneck_features`` or it does not return (B, F).
    """
    device = torch.device(device)
    (model,) = _prepare([model], device)
    if not callable(getattr(model, "bottleneck_features", None)):
        raise DataError(f"{type(model).__name__} has no bottleneck_features(x) -> (B, F) method")
    share, local_rows = shard_rows(images, rows)
    parts = []
    with eval_mode(model):
        for _, x in iterate_batches(images, local_rows, batch_size, device):
            features = model.bottleneck_features(x)
            if features.ndim != 2 or features.shape[0] != x.shape[0]:
                raise DataError(
                    f"bottleneck_features: expected (B, F) for input {tuple(x.shape)}, got {tuple(features.shape)}"
                )
            parts.append(features.float().cpu().numpy())
    local = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    return gather_rows(local, share, len(images) if rows is None else len(rows))
