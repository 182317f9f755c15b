"""The bundle on two ranks as users run it: ``torchrun -m monai.bundle run`` with
``configs/multi_gpu_active_learning.json`` over the smoke settings (gloo, CPU)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from dist_helpers import BUNDLE, HERE, child_env, rank_writes, torchrun

sys.path.insert(0, str(HERE.parent / "bundle"))
from bundle_helpers import bundle_command, tiny_overrides  # noqa: E402

pytestmark = pytest.mark.slow

CONFIGS = ["active_learning.json", "data/phantom.json", "smoke.json", "multi_gpu_active_learning.json"]

# Imported by every Python process started with this folder first on PYTHONPATH: the
# torchrun workers (RANK set) record their writes, the launcher does not.
SITECUSTOMIZE = """
import os
if "RANK" in os.environ and "ALSEG_AUDIT_ROOT" in os.environ:
    from dist_child import install_write_audit
    install_write_audit(os.environ["ALSEG_AUDIT_ROOT"], os.environ["ALSEG_AUDIT_LOG"])
"""


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle_ddp")
    hooks = root / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = child_env(ALSEG_AUDIT_ROOT=str(root / "work"), ALSEG_AUDIT_LOG=str(root))
    env["PYTHONPATH"] = f"{hooks}:{env['PYTHONPATH']}"
    # The phantom does not exist yet: rank 0 writes it while rank 1 waits (initialize of the override).
    overrides = tiny_overrides(root / "work/phantom", root / "work/run")
    command = bundle_command(CONFIGS, overrides)[1:]  # "-m monai.bundle run ..." for torchrun
    result = torchrun(command, env=env, cwd=BUNDLE, timeout=600)
    (root / "stdout.txt").write_text(result.stdout + result.stderr, encoding="utf-8")
    return root


def test_bundle_run_on_two_ranks_completes(launch):
    with open(launch / "work/run/results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["strategy"], float(r["budget"])) for r in rows] == [
        (s, b) for s in ("gcl_coreset", "random") for b in (0.1, 0.2)]
    for strategy in ("gcl_coreset", "random"):
        first, second = (json.loads((launch / f"work/run/{strategy}/repeat_0/round_{k}/selection.json").read_text(encoding="utf-8"))
                         for k in (0, 1))
        assert set(first["labelled"]) < set(second["labelled"])


def test_bundle_writes_on_rank_zero_only_and_results_once(launch):
    assert rank_writes(launch, 1) == []
    renamed = [Path(p).relative_to(launch / "work").as_posix() for event, p in rank_writes(launch, 0)
               if event == "os.rename"]
    assert renamed.count("run/results.csv") == 1
    assert "phantom/phantom.json" in renamed  # rank 0 wrote the phantom, rank 1 reused it
