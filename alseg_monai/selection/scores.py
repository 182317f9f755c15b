"""Uncertainty scores of slices from predicted probability maps (natural log throughout).

- :func:`entropy_score`: mean over pixels of the predictive entropy H[p].
- :func:`bald_score` (Houlsby et al. 2011; Gal et al. 2017): mean over pixels of the
  mutual information H[mean_t p_t] - mean_t H[p_t] of T MC-dropout samples.
- :func:`variance_ratio_score` (Freeman 1965; Beluch et al. 2018): mean over pixels of
  1 - (votes of the modal class) / M over M ensemble members.

These are the paper's uncertainty baselines (Sec. 4, "BALD", "Variance Ratio",
"Stochastic Batches"). Each takes a whole probability tensor; the streaming versions
used on large pools (:mod:`alseg_monai.selection.mc_dropout`,
:mod:`alseg_monai.selection.inference`) reduce batch by batch to the same values.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError

__all__ = ["bald_score", "entropy_map"]


def _as_tensor(probs: torch.Tensor | np.ndarray) -> torch.Tensor:
    probs = torch.as_tensor(probs)
    return probs if probs.is_floating_point() else probs.float()


def _check(probs: torch.Tensor, min_dims: int, layout: str, name: str, class_dim: int) -> None:
    if probs.ndim < min_dims:
        raise DataError(f"{name}: expected probabilities of shape {layout}, got {tuple(probs.shape)}")
    total = probs.sum(class_dim)
    tolerance = 1e-3 if probs.dtype in (torch.float32, torch.float64) else 1e-2
    if bool((probs < 0).any()) or not bool(torch.allclose(total, torch.ones_like(total), atol=tolerance)):
        raise DataError(
            f"{name}: expected probabilities (non-negative, summing to 1 over the class axis {class_dim} of "
            f"{layout}), got values summing to [{float(total.min()):.4g}, {float(total.max()):.4g}]; "
            "apply softmax to logits first"
        )


def entropy_map(probs: torch.Tensor, class_dim: int = 1) -> torch.Tensor:
    """Per-pixel entropy -sum_c p log p over ``class_dim`` (0 log 0 = 0), no checks."""
    return -torch.special.xlogy(probs, probs).sum(class_dim)


def _pixel_mean(per_pixel: torch.Tensor) -> torch.Tensor:
    return per_pixel.flatten(1).mean(1)


def entropy_score(probs: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean predictive entropy per slice.

    Args:
        probs: (N, C, H, W) (or any spatial dims) class probabilities.

    Returns:
        (N,) mean over pixels of -sum_c p log p.

    Raises:
        DataError: wrong number of dimensions, or values that are not probabilities.
    """
    probs = _as_tensor(probs)
    _check(probs, 3, "(N, C, H, W)", "entropy_score", 1)
    return _pixel_mean(entropy_map(probs, 1))


def bald_score(probs: torch.Tensor | np.ndarray) -> torch.Tensor:
    """BALD mutual information per slice from T MC-dropout samples.

    Args:
        probs: (T, N, C, H, W) (or any spatial dims) class probabilities of T stochastic
            forward passes.

    Returns:
        (N,) mean over pixels of H[mean_t p_t] - mean_t H[p_t]: 0 where all samples agree,
        growing with their disagreement.

    Raises:
        DataError: wrong number of dimensions, or values that are not probabilities.
    """
    probs = _as_tensor(probs)
    _check(probs, 4, "(T, N, C, H, W)", "bald_score", 2)
    predictive = entropy_map(probs.mean(0), 1)
    expected = entropy_map(probs, 2).mean(0)
    return _pixel_mean(predictive - expected)


def vote_ratio_map(votes: torch.Tensor, num_members: int) -> torch.Tensor:
    """Per-pixel variation ratio 1 - (modal class votes) / M from (N, C, ...) vote counts."""
    return 1.0 - votes.max(1).values.to(torch.float64) / num_members


def variance_ratio_score(probs: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Variation ratio per slice over M ensemble members.

    Args:
        probs: (M, N, C, H, W) (or any spatial dims) class probabilities of M models.

    Returns:
        (N,) float64 mean over pixels of 1 - (number of members voting the modal class) / M,
        each member voting its argmax class: 0 where all agree, at most 1 - 1/min(M, C).

    Raises:
        DataError: wrong number of dimensions, or values that are not probabilities.
    """
    probs = _as_tensor(probs)
    _check(probs, 4, "(M, N, C, H, W)", "variance_ratio_score", 2)
    votes = torch.nn.functional.one_hot(probs.argmax(2), probs.shape[2]).sum(0)  # (N, ..., C)
    votes = votes.movedim(-1, 1)
    return _pixel_mean(vote_ratio_map(votes, probs.shape[0]))
