"""When a run directory's report includes the study report (loop/report.py)."""

from alseg_monai.loop.report import wants_study_report
from alseg_monai.report.study import summarize_study


def _rows(strategies, repeats=5):
    return [{"strategy": s, "budget": 0.02, "repeat": r, "dice": 0.8} for s in strategies for r in range(repeats)]


def test_only_rows_with_a_random_round_and_repeats_make_a_study():
    # A profiled single chain of a study config: Random configured, no Random round.
    # summarize_study would raise on these rows; the report must not call it.
    assert not wants_study_report(_rows(["gcl_coreset"]), repeats=5)
    assert wants_study_report(_rows(["gcl_coreset", "random"]), repeats=5)
    assert summarize_study(_rows(["gcl_coreset", "random"]))
    assert not wants_study_report(_rows(["gcl_coreset", "random"], repeats=1), repeats=1)
    assert not wants_study_report([], repeats=5)
