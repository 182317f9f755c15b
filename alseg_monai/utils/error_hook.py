"""The project's errors as the last lines of a command-line run, not inside a traceback.

``python -m monai.bundle run`` ends on an uncaught exception, and MONAI's config
machinery wraps the project's :class:`~alseg_monai.errors.AlsegError` in
``RuntimeError: Failed to evaluate ConfigExpression``: the line that tells the user what
to change sits in the middle of some 60 lines of traceback. :func:`install_error_hook`
(called by the bundle's ``initialize``) replaces ``sys.excepthook`` so that such a run
ends with::

    alseg_monai stopped on bad input or settings (full traceback: <log file>, or set ALSEG_TRACEBACK=1)
    DataError: <the error's message>

The full traceback is appended to the log file when its folder (the run's
``output_dir``) exists: an error found before the run starts, such as a misspelt key,
creates no folder. It is printed as usual when the environment variable
``ALSEG_TRACEBACK`` is set to ``1`` (or ``true``, ``yes``).
Exceptions that are not the project's (bugs, interrupts) keep Python's full traceback.
"""

from __future__ import annotations

import datetime
import os
import sys
import traceback
from pathlib import Path
from types import TracebackType

from ..errors import find_alseg_error

__all__ = ["install_error_hook"]

TRACEBACK_ENV = "ALSEG_TRACEBACK"


def _traceback_wanted() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class ErrorHook:
    """A ``sys.excepthook`` that prints a run-stopping :class:`AlsegError` as its message.

    Args:
        previous: the hook to hand everything else to (the one it replaced).
        log_file: where the full traceback of a project error is appended (None: nowhere).
    """

    def __init__(self, previous, log_file: str | os.PathLike | None = None) -> None:
        self.previous = previous
        self.log_file = Path(log_file) if log_file else None

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        error = find_alseg_error(value) if isinstance(value, Exception) else None
        if error is None or _traceback_wanted():
            self.previous(kind, value, tb)
            return
        try:
            where = self._log(kind, value, tb)
        except Exception:  # the hook must never hide the error it reports
            self.previous(kind, value, tb)
            return
        sys.stdout.flush()  # log lines on stdout first, so the error is last on a terminal
        sys.stderr.write(
            f"alseg_monai stopped on bad input or settings (full traceback: {where}set {TRACEBACK_ENV}=1)\n"
            f"{type(error).__name__}: {error}\n"
        )
        sys.stderr.flush()

    def _log(self, kind, value, tb) -> str:
        """Append the traceback to the log file; returns how to name it in the message."""
        if self.log_file is None or not self.log_file.parent.is_dir():
            return ""
        text = "".join(traceback.format_exception(kind, value, tb))
        try:
            with open(self.log_file, "a", encoding="utf-8") as handle:
                handle.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} {' '.join(sys.argv)}\n")
                handle.write(text)
        except OSError as err:
            return f"not written to {self.log_file} ({err.strerror}); "
        return f"{self.log_file}, or "


def install_error_hook(log_file: str | os.PathLike | None = None) -> ErrorHook:
    """Install (once per process) the :class:`ErrorHook` as ``sys.excepthook``.

    Args:
        log_file: the file the full tracebacks of project errors are appended to (e.g.
            ``<output_dir>/error.log``); a later call only changes it.

    Returns:
        The installed hook.
    """
    hook = sys.excepthook
    if isinstance(hook, ErrorHook):
        hook.log_file = Path(log_file) if log_file else None
        return hook
    hook = ErrorHook(sys.excepthook, log_file)
    sys.excepthook = hook
    return hook
