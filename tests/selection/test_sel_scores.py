"""Uncertainty scores: BALD, variance ratio and entropy against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alseg_monai.errors import DataError
from alseg_monai.selection import bald_score
from alseg_monai.selection.scores import entropy_score, variance_ratio_score


def _one_pixel(*distributions: list[float]) -> torch.Tensor:
    """(T, 1, C, 1, 1) probabilities: one slice of one pixel, one distribution per sample."""
    return torch.tensor(distributions, dtype=torch.float64)[:, None, :, None, None]


def test_bald_is_zero_when_all_samples_agree():
    probs = torch.softmax(torch.randn(1, 3, 4, 5, 6), dim=2).repeat(7, 1, 1, 1, 1)
    np.testing.assert_allclose(bald_score(probs).numpy(), 0.0, atol=1e-6)


def test_bald_hand_computed_and_growing_with_disagreement():
    # Two samples [1-a, a] and [a, 1-a]: mean is uniform, so BALD = log 2 - H(a).
    def h(a: float) -> float:
        return -sum(p * math.log(p) for p in (a, 1 - a) if p > 0)

    scores = []
    for a in (0.5, 0.3, 0.1, 0.0):
        score = float(bald_score(_one_pixel([1 - a, a], [a, 1 - a]))[0])
        assert score == pytest.approx(math.log(2) - h(a), abs=1e-12)
        scores.append(score)
    assert scores == sorted(scores) and scores[0] == pytest.approx(0.0) and scores[-1] == pytest.approx(math.log(2))


def test_bald_is_a_mean_over_pixels_per_slice():
    agree = _one_pixel([0.9, 0.1], [0.9, 0.1])
    disagree = _one_pixel([1.0, 0.0], [0.0, 1.0])
    probs = torch.cat([torch.cat([agree, disagree], dim=4), torch.cat([disagree, disagree], dim=4)], dim=1)
    np.testing.assert_allclose(bald_score(probs).numpy(), [math.log(2) / 2, math.log(2)], atol=1e-12)


def test_variance_ratio_hand_computed():
    # 5 members over 2 pixels: votes (3 of class 0, 2 of class 1) -> 1 - 3/5; unanimous -> 0.
    first = [[0.8, 0.2]] * 3 + [[0.1, 0.9]] * 2
    second = [[0.3, 0.7]] * 5
    probs = torch.tensor([[a, b] for a, b in zip(first, second)], dtype=torch.float32)  # (5, 2 pixels, 2 classes)
    probs = probs.permute(0, 2, 1)[:, None, :, None, :]  # (M=5, N=1, C=2, H=1, W=2)
    assert float(variance_ratio_score(probs)[0]) == pytest.approx((0.4 + 0.0) / 2)


def test_variance_ratio_is_zero_for_identical_members():
    probs = torch.softmax(torch.randn(1, 2, 4, 3, 3), dim=2).repeat(5, 1, 1, 1, 1)
    assert torch.all(variance_ratio_score(probs) == 0)


def test_entropy_hand_computed():
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)[:, :, None, None]  # (2 slices, C=2, 1, 1)
    np.testing.assert_allclose(entropy_score(probs).numpy(), [math.log(2), 0.0], atol=1e-12)
    uniform = torch.full((3, 4, 2, 2), 0.25)
    np.testing.assert_allclose(entropy_score(uniform).numpy(), math.log(4), rtol=1e-6)


def test_scores_accept_numpy():
    probs = np.full((2, 3, 2, 4, 4), 0.5, dtype=np.float32)
    assert bald_score(probs).shape == (3,)


@pytest.mark.parametrize(
    "function, shape, message",
    [
        (bald_score, (3, 2, 4), r"\(T, N, C, H, W\), got \(3, 2, 4\)"),
        (variance_ratio_score, (3, 2, 4), r"\(M, N, C, H, W\), got \(3, 2, 4\)"),
        (entropy_score, (2, 4), r"\(N, C, H, W\), got \(2, 4\)"),
    ],
)
def test_wrong_shapes_raise_data_error_with_the_shape(function, shape, message):
    with pytest.raises(DataError, match=message):
        function(torch.ones(shape))


def test_logits_instead_of_probabilities_raise_data_error():
    with pytest.raises(DataError, match="softmax"):
        bald_score(torch.randn(2, 1, 3, 2, 2))
