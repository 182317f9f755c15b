"""The study report: study.md's tables and study.png, from round metrics."""

from __future__ import annotations

import numpy as np
import pytest

from alseg_monai import DataError
from alseg_monai.report import write_study_report
from alseg_monai.report.study import format_study_tables, summarize_study


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for repeat in range(5):
        shared = rng.normal(0, 0.05)  # the repeat's training noise, common to all strategies
        for budget in (0.02, 0.05):
            rows.append({"strategy": "random", "budget": budget, "repeat": repeat, "dice": 0.7 + shared})
            rows.append({"strategy": "ours", "budget": budget, "repeat": repeat,
                         "dice": 0.73 + shared + rng.normal(0, 0.005)})
            rows.append({"strategy": "worse", "budget": budget, "repeat": repeat, "dice": 0.69 + shared})
    return rows


def test_paired_differences_see_through_shared_noise():
    cells = {(c.strategy, c.budget): c for c in summarize_study(_rows())}
    ours = cells[("ours", 0.02)]
    assert ours.difference.mean == pytest.approx(3.0, abs=0.5) and ours.difference.low > 0 and ours.wins == 5
    # The unpaired intervals overlap (training noise), the paired one does not.
    assert ours.dice.low < cells[("random", 0.02)].dice.high
    assert cells[("worse", 0.05)].difference.high < 0 and cells[("worse", 0.05)].wins == 0
    assert cells[("random", 0.02)].difference is None


def test_tables_and_files(tmp_path):
    tables = write_study_report(_rows(), tmp_path, title="t", notes=["a note"])
    text = (tmp_path / "study.md").read_text(encoding="utf-8")
    assert tables in text and "a note" in text and (tmp_path / "study.png").stat().st_size > 1000
    lines = tables.splitlines()
    assert "| strategy | 2 % | 5 % |" in lines and any(line.startswith("| ours | +2.9 [+") for line in lines)
    assert "95 % CI" in tables and "5/5" in tables
    assert format_study_tables(summarize_study(_rows()), "random").count("| random |") == 1


def test_missing_reference_is_named():
    with pytest.raises(DataError, match="reference strategy 'random'"):
        summarize_study([{"strategy": "ours", "budget": 0.1, "repeat": 0, "dice": 0.5}])
    with pytest.raises(DataError, match="no finished round"):
        summarize_study([])
