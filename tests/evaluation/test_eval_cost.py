"""Annotation cost in full-mask units (paper Fig. 2)."""

from __future__ import annotations

import pytest

from alseg_monai.errors import ConfigError, DataError
from alseg_monai.evaluation import annotation_cost
from alseg_monai.evaluation.cost import cumulative_costs, volume_cost


def test_full_and_scribble_slices():
    assert annotation_cost(30) == 30.0
    assert annotation_cost(30, "scribble") == pytest.approx(2.0)
    assert annotation_cost(30, "scribble", scribble_cost=0.5) == 15.0
    assert annotation_cost(0, "scribble") == 0.0


def test_volume_costs_its_slices():
    volumes = [{"id": "a", "num_slices": 9}, {"id": "b", "num_slices": 6}]
    assert volume_cost(volumes) == 15.0
    assert volume_cost([9, 6], "scribble") == pytest.approx(1.0)
    with pytest.raises(DataError, match="num_slices"):
        volume_cost([{"id": "c"}])


def test_cumulative_costs_per_round():
    assert cumulative_costs([15, 15, 30], "scribble") == pytest.approx([1.0, 2.0, 4.0])
    assert cumulative_costs([3, 2]) == [3.0, 5.0]


def test_bad_settings():
    with pytest.raises(ConfigError, match="label_kind"):
        annotation_cost(3, "boxes")
    with pytest.raises(ConfigError, match="scribble_cost"):
        annotation_cost(3, "scribble", scribble_cost=0)
    with pytest.raises(DataError, match="num_slices"):
        annotation_cost(-1)
    with pytest.raises(DataError, match="num_slices"):
        annotation_cost(2.5)
