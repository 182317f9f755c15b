"""The command line's error hook, in process: what it prints, logs and hands on."""

from __future__ import annotations

import sys

import pytest

from alseg_monai import ConfigError, DataError
from alseg_monai.errors import find_alseg_error
from alseg_monai.utils import install_error_hook
from alseg_monai.utils.error_hook import TRACEBACK_ENV, ErrorHook


def _wrapped(error: Exception) -> RuntimeError:
    """``error`` raised inside a MONAI-like wrapper: RuntimeError ``from`` it."""
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression: \"$@experiment.run()\"") from inner
    except RuntimeError as outer:
        return outer


def _hook(log_file=None):
    calls = []
    return ErrorHook(lambda *info: calls.append(info), log_file), calls


def test_find_alseg_error_follows_causes_not_contexts():
    error = DataError("a.nii.gz: bad")
    assert find_alseg_error(_wrapped(error)) is error
    try:
        try:
            raise ConfigError("handled")
        except ConfigError:
            raise KeyError("a bug while handling it")
    except KeyError as bug:
        assert bug.__context__ is not None and find_alseg_error(bug) is None


def test_project_error_printed_last_and_logged(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    (tmp_path / "run").mkdir()
    hook, calls = _hook(tmp_path / "run" / "error.log")
    err = _wrapped(DataError("case2_gt.nii.gz: spacing (3, 3, 3) mm does not match"))
    hook(type(err), err, err.__traceback__)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"alseg_monai stopped on bad input or settings (full traceback: {tmp_path / 'run' / 'error.log'}, "
        f"or set {TRACEBACK_ENV}=1)",
        "DataError: case2_gt.nii.gz: spacing (3, 3, 3) mm does not match",
    ]
    assert calls == []
    log = (tmp_path / "run" / "error.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "DataError: case2_gt.nii.gz" in log and "RuntimeError" in log


def test_other_errors_and_the_switch_keep_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    hook, calls = _hook(tmp_path / "error.log")
    bug = _wrapped(KeyError("x"))
    hook(type(bug), bug, bug.__traceback__)
    assert [c[1] for c in calls] == [bug] and capsys.readouterr().err == ""
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    err = _wrapped(ConfigError("budgets: bad"))
    hook(type(err), err, err.__traceback__)
    assert [c[1] for c in calls] == [bug, err] and capsys.readouterr().err == ""
    assert not (tmp_path / "error.log").exists()


def test_unwritable_log_file_is_said(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "error.log").mkdir()  # a folder where the log file should be
    hook, _ = _hook(tmp_path / "run" / "error.log")
    err = DataError("bad")
    hook(type(err), err, None)
    first, last = capsys.readouterr().err.splitlines()
    assert f"not written to {tmp_path / 'run' / 'error.log'}" in first and last == "DataError: bad"


def test_missing_run_folder_is_not_created_for_the_log(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    hook, _ = _hook(tmp_path / "run" / "error.log")
    err = ConfigError("unknown config key 'budgts'")
    hook(type(err), err, None)
    first, last = capsys.readouterr().err.splitlines()
    assert first == f"alseg_monai stopped on bad input or settings (full traceback: set {TRACEBACK_ENV}=1)"
    assert last == "ConfigError: unknown config key 'budgts'" and not (tmp_path / "run").exists()


def test_install_once_per_process(tmp_path, monkeypatch):
    original = sys.__excepthook__
    monkeypatch.setattr(sys, "excepthook", original)  # restored after the test
    first = install_error_hook(tmp_path / "a.log")
    second = install_error_hook(tmp_path / "b.log")
    assert first is second is sys.excepthook and first.previous is original
    assert first.log_file == tmp_path / "b.log"


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_switch_values(value, monkeypatch, tmp_path):
    monkeypatch.setenv(TRACEBACK_ENV, value)
    hook, calls = _hook()
    err = DataError("bad")
    hook(type(err), err, None)
    assert len(calls) == 1
