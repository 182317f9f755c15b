"""The project's exceptions.

Every error raised on bad input is an :class:`AlsegError`, so callers (and the bundle
CLI) can tell a user's mistake from a bug. Messages name the file or config key, the
problem, and what was expected.
"""

from __future__ import annotations

__all__ = ["AlsegError", "DataError", "ConfigError", "ResourceError"]


class AlsegError(Exception):
    """Base class of every error alseg_monai raises on bad input or settings."""


class DataError(AlsegError, ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ConfigError(AlsegError, ValueError):
    """A configuration value or key is invalid."""


class ResourceError(AlsegError, MemoryError):
    """A requested setting cannot fit in the available memory (checked before allocating)."""
