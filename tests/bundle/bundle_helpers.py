"""Running the bundle as a user does: ``python -m monai.bundle run`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "slice_active_learning"
CONFIGS = BUNDLE / "configs"


def bundle_command(configs: list[str], overrides: dict[str, object], action: str = "run") -> list[str]:
    files = [str(CONFIGS / name) for name in configs]
    command = [sys.executable, "-m", "monai.bundle", action, "--config_file", repr(files),
               "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
               "--bundle_root", str(BUNDLE)]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]
    return command


def tiny_overrides(phantom_root: Path, output_dir: Path, **extra) -> dict[str, object]:
    """Smoke settings on a 6-patient 32 x 32 phantom shared by the tests."""
    overrides = {"phantom#root": str(phantom_root), "phantom#num_patients": 6, "phantom#image_size": 32,
                 "output_dir": str(output_dir)}
    overrides.update(extra)
    return overrides


def run_bundle(configs: list[str], overrides: dict[str, object], timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(bundle_command(configs, overrides), capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
                          env=env, cwd=BUNDLE)
