"""segmentation (validation) uses evaluation.dice and evaluation.volumes uses segmentation.inference:
both import orders must work in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first, second", [("evaluation", "segmentation"), ("segmentation", "evaluation")])
def test_import_order(first, second):
    code = (f"import alseg_monai.{first}, alseg_monai.{second}; "
            "from alseg_monai.evaluation import evaluate_volumes; from alseg_monai.segmentation import train_round")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr
