"""Intervals over AL repeats and paired differences (how strategies are judged)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from alseg_monai import ConfigError, DataError
from alseg_monai.evaluation.repeats import mean_interval, paired_difference


def test_mean_interval_is_the_student_t_interval():
    values = [81.0, 84.5, 79.0, 88.0, 83.5]
    interval = mean_interval(values)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / np.sqrt(5)
    assert interval.mean == pytest.approx(np.mean(values))
    assert (interval.low, interval.high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert interval.half_width == pytest.approx(half) and interval.n == 5 and interval.excludes_zero
    assert not mean_interval([-1.0, 2.0, 0.5]).excludes_zero
    narrow = mean_interval(values, level=0.5)
    assert narrow.half_width < interval.half_width


def test_one_value_has_no_interval_and_bad_input_is_refused():
    single = mean_interval([0.7])
    assert single.mean == 0.7 and np.isnan(single.low) and np.isnan(single.high) and not single.excludes_zero
    with pytest.raises(DataError, match="finite"):
        mean_interval([])
    with pytest.raises(DataError, match="finite"):
        mean_interval([1.0, np.nan])
    with pytest.raises(ConfigError, match="level"):
        mean_interval([1.0, 2.0], level=1.5)


def test_paired_difference_uses_shared_repeats_only():
    strategy = {0: 80.0, 1: 85.0, 2: 90.0, 3: 70.0}
    random = {0: 78.0, 1: 82.0, 2: 87.5, 4: 99.0}
    difference = paired_difference(strategy, random)
    assert difference.n == 3 and difference.mean == pytest.approx(np.mean([2.0, 3.0, 2.5]))
    assert difference.excludes_zero  # a small but consistent win
    with pytest.raises(DataError, match="no repeat in common"):
        paired_difference({0: 1.0}, {1: 1.0})
