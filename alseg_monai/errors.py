"""The project's exceptions.

Every error raised on bad input is an :class:`AlsegError`, so callers (and the bundle
CLI) can tell a user's mistake from a bug. Messages name the file or config key, the
problem, and what was expected.
"""

from __future__ import annotations

__all__ = ["AlsegError", "DataError", "ConfigError", "ResourceError", "find_alseg_error"]


class AlsegError(Exception):
    """Base class of every error alseg_monai raises on bad input or settings."""


class DataError(AlsegError, ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ConfigError(AlsegError, ValueError):
    """A configuration value or key is invalid."""


class ResourceError(AlsegError, MemoryError):
    """A requested setting cannot fit in the available memory (checked before allocating)."""


def find_alseg_error(err: BaseException | None) -> AlsegError | None:
    """The first :class:`AlsegError` in ``err`` and its chain of causes, or None.

    MONAI re-raises what a bundle expression or a ``Compose`` transform raised as a
    ``RuntimeError`` ``from`` it, so the user's error is a ``__cause__`` down the chain.
    Only causes are followed, not ``__context__``: an AlsegError that was being handled
    when another exception occurred is not what stopped the run.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, AlsegError):
            return err
        seen.add(id(err))
        err = err.__cause__
    return None
