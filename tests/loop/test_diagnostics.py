"""Pick diagnostics: what a strategy labelled (position, patients, volumes, classes)."""

from __future__ import annotations

import numpy as np
import pytest

from alseg_monai.loop.diagnostics import pick_diagnostics, relative_position


def _record(patient, volume, z):
    return {"id": f"{volume}_{z}", "patient": patient, "volume": volume, "slice": z}


def test_relative_position_runs_from_first_to_last_slice():
    assert relative_position(0, 10) == 0.0 and relative_position(9, 10) == 1.0 and relative_position(0, 1) == 0.5


def test_diagnostics_of_a_set_of_slices():
    records = [_record("p1", "p1_ed", 0), _record("p1", "p1_es", 9), _record("p2", "p2_ed", 4)]
    labels = {"p1_ed_0": np.array([[0, 1], [2, 3]]), "p1_es_9": np.array([[0, 2], [2, 3]]),
              "p2_ed_4": np.array([[0, 0], [0, 3]])}
    out = pick_diagnostics(records, lambda volume: 10, lambda r: labels[r["id"]], ("RV", "Myo", "LV"))
    assert out["slices"] == 3 and out["patients"] == 2 and out["volumes"] == 3 and out["max_per_patient"] == 2
    assert out["position_mean"] == pytest.approx(np.mean([0.0, 1.0, 4 / 9]))
    assert out["class_share"] == pytest.approx({"RV": 1 / 3, "Myo": 2 / 3, "LV": 1.0})


def test_unknown_labels_give_no_class_shares_and_empty_sets_are_described():
    records = [_record("p1", "v", 2)]
    assert pick_diagnostics(records, lambda v: 5, lambda r: None, ("liver",))["class_share"] is None
    empty = pick_diagnostics([], lambda v: 5, lambda r: None, ("liver",))
    assert empty["slices"] == 0 and empty["position_mean"] is None
