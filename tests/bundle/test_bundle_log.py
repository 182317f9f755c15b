"""The log of a bundle run in two workers, as a user reads it in the terminal and in a log
file: each message once, no faiss import probes, no leaked-semaphore warning, and a
progress line per round with rounds done / total and an ETA (also when resumed)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess

import pytest
from bundle_helpers import BUNDLE, bundle_command, tiny_overrides

from alseg_monai.loop import load_experiment

CONFIGS = ["active_learning.json", "data/phantom.json", "smoke.json"]
SETTINGS = {"strategies": ["random", "coreset"], "progress": True}  # coreset's K-Center loads faiss
ROUNDS = 4  # 2 strategies x 1 repeat x 2 budgets (smoke.json)
PROGRESS = re.compile(r"rounds (\d+)/(\d+) done \(\d+%\): (\w+) repeat (\d+) budget [\d.]+%; (\d+) this call in "
                      r"[\w ]+, ETA (\d+ s|\d+ min \d+ s|\d+ h \d+ min)$")

LOGGING_CONF = """[loggers]
keys=root

[handlers]
keys=console,file

[formatters]
keys=full

[logger_root]
level=INFO
handlers=console,file

[handler_console]
class=StreamHandler
level=INFO
formatter=full
args=(sys.stdout,)

[handler_file]
class=FileHandler
level=INFO
formatter=full
args=({log_file!r}, 'w', 'utf-8')

[formatter_full]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory) -> dict:
    """A 2-worker bundle run whose log goes to the terminal (stdout) and to a file."""
    work = tmp_path_factory.mktemp("log")
    log_file = work / "run.log"
    (work / "logging.conf").write_text(LOGGING_CONF.format(log_file=str(log_file)), encoding="utf-8")
    overrides = tiny_overrides(work / "phantom", work / "run", workers=2, **SETTINGS)
    command = bundle_command(CONFIGS, overrides)
    command[command.index("--logging_file") + 1] = str(work / "logging.conf")
    # Warnings shown: the resource tracker reports leaked semaphores as a UserWarning at exit.
    env = {**os.environ, "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", errors="replace",
                            timeout=600, env=env, cwd=BUNDLE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"stdout": result.stdout, "stderr": result.stderr, "log": log_file.read_bytes().decode("utf-8"),
            "work": work}


def test_the_log_is_clean_and_says_each_message_once(two_worker_run):
    terminal = two_worker_run["stdout"] + two_worker_run["stderr"]
    for noise in ("faiss.loader", "ModuleNotFoundError", "Traceback", "leaked semaphore"):
        assert noise not in terminal, noise
    log = two_worker_run["log"]
    assert re.search(r"kcenter_greedy: .*, [1-9]\d* labelled", log), "no K-Center round that loads faiss"
    assert log.count("acdc dataset at") == 1, "the workers repeat the parent's dataset summary"
    assert log.count("running 2 chains") == 1


def test_a_progress_line_per_round_in_the_terminal_and_the_file(two_worker_run):
    log = two_worker_run["log"]
    assert "\r" not in log, "a log file gets plain lines, no progress-bar carriage returns"
    lines = [line.split(" - INFO - ")[-1] for line in log.splitlines() if " - alseg_monai.loop.progress - " in line]
    assert lines[0] == f"rounds 0/{ROUNDS} done; {ROUNDS} to run"
    matches = [PROGRESS.match(line) for line in lines[1:]]
    assert all(matches) and len(matches) == ROUNDS, lines
    assert [(int(m[1]), int(m[2]), int(m[5])) for m in matches] == [(k, ROUNDS, k) for k in range(1, ROUNDS + 1)]
    assert sorted(m[3] for m in matches) == ["coreset", "coreset", "random", "random"]
    assert matches[-1][6] == "0 s"
    # The terminal shows the same lines, printed once by the parent (which knows the total).
    assert sum(f"rounds {k}/{ROUNDS} done (" in two_worker_run["stdout"] for k in range(1, ROUNDS + 1)) == ROUNDS
    assert two_worker_run["stdout"].count(f"rounds {ROUNDS}/{ROUNDS} done (") == 1


def test_a_resumed_run_counts_the_rounds_on_disk(two_worker_run, tmp_path, caplog):
    output = tmp_path / "run"
    shutil.copytree(two_worker_run["work"] / "run", output)
    (output / "coreset/repeat_0/round_1/metrics.json").unlink()  # its training is kept: evaluated again only
    overrides = tiny_overrides(two_worker_run["work"] / "phantom", output, workers=1, report=False, **SETTINGS)
    experiment = load_experiment(CONFIGS[1:], {**overrides, "progress": False})
    with caplog.at_level(logging.INFO, logger="alseg_monai.loop.progress"):
        rows = experiment.run()
    assert len(rows) == ROUNDS
    lines = [r.getMessage() for r in caplog.records if r.name == "alseg_monai.loop.progress"]
    assert lines[0] == f"rounds {ROUNDS - 1}/{ROUNDS} finished on disk; 1 to run"
    assert len(lines) == 2 and PROGRESS.match(lines[1]), lines
    assert lines[1].startswith(f"rounds {ROUNDS}/{ROUNDS} done (100%): coreset repeat 0 budget 20%; 1 this call in ")
