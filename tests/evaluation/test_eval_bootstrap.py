"""Bootstrap error bars (paper appendix D) on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.evaluation import bootstrap_error
from alseg_monai.evaluation.bootstrap import bootstrap_means


def test_constant_scores_have_no_error():
    assert bootstrap_error(np.full((5, 40), 0.8)) == pytest.approx(0.0, abs=1e-12)
    # repeats that differ by a constant per repeat: resampling volumes changes nothing either
    assert bootstrap_error(np.full((3, 10), 0.5) + np.arange(3)[:, None]) == pytest.approx(0.0, abs=1e-12)


def test_matches_a_direct_numpy_computation():
    scores = np.random.default_rng(3).random((5, 30))
    n, seed = 500, 11
    draws = np.random.default_rng(seed).integers(0, 30, size=(n, 30))
    means = np.array([np.mean([scores[r, d].mean() for r in range(5)]) for d in draws])
    np.testing.assert_allclose(bootstrap_means(scores, n=n, seed=seed), means)
    assert bootstrap_error(scores, n=n, seed=seed) == pytest.approx(2 * means.std(ddof=1))


def test_close_to_twice_the_standard_error():
    rng = np.random.default_rng(0)
    sigma, items = 0.1, 200
    scores = rng.normal(0.7, sigma, (1, items))
    expected = 2 * scores.std(ddof=1) / np.sqrt(items)
    assert bootstrap_error(scores, n=4000, seed=1) == pytest.approx(expected, rel=0.1)


def test_one_dimensional_scores_and_slice_unit():
    scores = np.random.default_rng(5).random(50)
    assert bootstrap_error(scores, seed=2) == bootstrap_error(scores[None], seed=2)
    assert bootstrap_error(scores, seed=2, unit="slice") == bootstrap_error(scores, seed=2)
    assert bootstrap_error(scores, seed=2) != bootstrap_error(scores, seed=3)


def test_errors():
    with pytest.raises(ConfigError, match="unit"):
        bootstrap_error(np.ones(4), unit="patient")
    with pytest.raises(ConfigError, match="n:"):
        bootstrap_error(np.ones(4), n=1)
    with pytest.raises(DataError, match="NaN"):
        bootstrap_error(np.array([0.5, np.nan]))
    with pytest.raises(DataError, match="at least one item"):
        bootstrap_error(np.zeros((2, 0)))
