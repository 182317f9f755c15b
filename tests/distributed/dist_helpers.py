"""Launching two-rank CPU runs (gloo) as users do, with ``torchrun``, from the distributed tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLE = HERE.parents[1] / "bundles" / "slice_active_learning"


def child_env(**extra: str) -> dict[str, str]:
    """The children's environment: one thread each (two ranks share two cores), this
    folder importable (``dist_child``), warnings quiet."""
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": path}
    env.pop("RANK", None)
    env.update(extra)
    return env


def torchrun(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, nproc: int = 2,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=<nproc> <args>``; fails the
    test with the children's output tail when it does not exit cleanly."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout, env=env or child_env(),
                            cwd=cwd)
    assert result.returncode == 0, (result.stdout[-4000:] + "\n" + result.stderr[-6000:])
    return result


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    return path


def rank_writes(log_dir: Path, rank: int) -> list[list[str]]:
    """The ``[event, path]`` writes the audit hook recorded for ``rank``."""
    return json.loads((log_dir / f"writes_rank{rank}.json").read_text(encoding="utf-8"))
