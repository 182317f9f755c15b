"""Shared fixtures: small datasets written in real layouts by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from layouts import write_acdc_patient


@pytest.fixture
def acdc_root(tmp_path: Path) -> Path:
    """Four ACDC patients (two frames each, 5 slices of 24 x 20) under ``tmp_path/ACDC``."""
    root = tmp_path / "ACDC"
    for n in range(1, 5):
        write_acdc_patient(root, n, seed=n)
    return root
