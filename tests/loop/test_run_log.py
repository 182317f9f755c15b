"""A run's log: a progress line per finished round (done / total, ETA), faiss's import
probes kept out, and parallel workers stopped without leaking semaphores."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from alseg_monai.loop.loop import ActiveLearningLoop, RoundTraining
from alseg_monai.loop.progress import RunProgress, format_duration
from alseg_monai.loop.state import RoundPaths


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_counts_rounds_done_on_disk_and_extrapolates_this_calls(caplog):
    clock = Clock()
    progress = RunProgress(total=6, done=2, clock=clock)
    with caplog.at_level(logging.INFO, logger="alseg_monai.loop.progress"):
        progress.start()
        clock.now += 30
        progress({"strategy": "random", "repeat": 1, "budget": 0.05, "round": 0})
        clock.now += 90
        progress({"strategy": "random", "repeat": 1, "budget": 0.1, "round": 1})
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "rounds 2/6 finished on disk; 4 to run"
    # 30 s for one round, 3 left -> 90 s; then 60 s a round, 2 left -> 2 min.
    assert lines[1] == "rounds 3/6 done (50%): random repeat 1 budget 5%; 1 this call in 30 s, ETA 1 min 30 s"
    assert lines[2] == "rounds 4/6 done (67%): random repeat 1 budget 10%; 2 this call in 2 min 00 s, ETA 2 min 00 s"
    assert [format_duration(s) for s in (0, 59.4, 61, 3600 * 2 + 7 * 60, float("nan"))] == [
        "0 s", "59 s", "1 min 01 s", "2 h 07 min", "?"]


def test_loop_calls_its_handlers_for_rounds_it_finishes_not_those_on_disk(tmp_path):
    pool = {f"s{i}": {"id": f"s{i}", "volume": "v0"} for i in range(10)}
    seen: list[dict] = []

    def loop() -> ActiveLearningLoop:
        return ActiveLearningLoop(
            name="first", strategy=SimpleNamespace(select=lambda context, budget: [
                i for i in pool if i not in context.labelled][:budget]),
            context=lambda labelled, index: SimpleNamespace(labelled=labelled),
            oracle=SimpleNamespace(annotate=lambda rounds: {}),
            trainer=lambda records, annotations, paths, index, fraction: RoundTraining(len(records), 0.5, 1),
            evaluator=lambda model, csv: SimpleNamespace(mean_dice=0.1, per_class=[0.1], per_volume=[0.1]),
            describe=lambda selection, annotations: {}, records=pool, budgets=[0.2, 0.5],
            paths=lambda k: RoundPaths(tmp_path / f"round_{k}"), cost=len, info={"repeat": 0},
            handlers=[seen.append])

    for k in range(2):
        (tmp_path / f"round_{k}").mkdir()
    loop().run()
    assert [(r["strategy"], r["round"], r["budget"]) for r in seen] == [("first", 0, 0.2), ("first", 1, 0.5)]
    (tmp_path / "round_1" / "metrics.json").unlink()
    loop().run()
    assert [r["round"] for r in seen] == [0, 1, 1]


def _python(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    # Warnings shown (the suite's bundle runs ignore them): the resource tracker's
    # "leaked semaphore" report is a UserWarning, printed by its process at exit.
    env = {**os.environ, "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def test_faiss_import_probes_stay_out_of_the_log(tmp_path):
    show = "import logging; logging.basicConfig(level=logging.INFO); {}import faiss; faiss.IndexFlatL2(4)"
    plain = _python(["-c", show.format("")], tmp_path)
    assert plain.returncode == 0 and "faiss.loader" in plain.stderr  # what the package keeps out
    quiet = _python(["-c", show.format("import alseg_monai; ")], tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "faiss.loader" not in quiet.stderr and "ModuleNotFoundError" not in quiet.stderr


STOPPED_RUN = '''
import time

from tqdm import tqdm

from alseg_monai.loop.parallel import run_chains


class Experiment:
    """Two chains: the first fails at once, the second is still running when it does."""

    specs = [None, None]

    def prepare(self):
        for _ in tqdm(range(2), disable=True):  # as the slice cache's bar
            pass

    def run_chain(self, index, repeat, handlers=()):
        time.sleep(1.0 if index == 0 else 60.0)
        if index == 0:
            raise RuntimeError("chain failed")


if __name__ == "__main__":
    try:
        run_chains(Experiment(), [(0, 0), (1, 0)], workers=2)
    except RuntimeError as error:
        print("stopped:", error)
'''


def test_a_stopped_parallel_run_leaks_no_semaphore(tmp_path):
    script = tmp_path / "stopped_run.py"
    script.write_text(STOPPED_RUN, encoding="utf-8")
    result = _python([str(script)], tmp_path)
    assert "stopped: chain failed" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
    assert "leaked semaphore" not in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
