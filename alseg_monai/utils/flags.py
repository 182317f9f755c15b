"""Boolean settings as the bundle command line gives them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["as_bool"]

_WORDS = {"true": True, "false": False}


def as_bool(value: Any, key: str) -> bool:
    """``value`` as a bool: JSON ``true`` / ``false``, or the strings ``"true"`` / ``"false"``
    (any case) that ``python -m monai.bundle run --key false`` passes (fire reads only
    ``False`` as a boolean).

    Raises:
        ConfigError: any other value, naming ``key``.
    """
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{key}={value!r}; expected true or false")
    return bool(value)
