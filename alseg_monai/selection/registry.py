"""Strategies by name, so a bundle config picks one with a string.

Built-in names: ``random``, ``coreset``, ``gcl_coreset`` (the paper's method), ``bald``,
``variance_ratio``, ``stochastic_batches``, ``typiclust``, ``probcover``, ``vaal``, ``coregcn``,
``schedule``.

In a bundle config::

    "strategy": {"_target_": "alseg_monai.selection.get_strategy",
                 "name": "gcl_coreset", "pixel_weight": 0.0}

A user's own strategy needs no registration: any object with a
``select(context, budget) -> list[str]`` method (see
:class:`~alseg_monai.selection.SelectionContext`) plugs in through ``_target_``::

    "strategy": {"_target_": "my_package.MyStrategy", "my_knob": 3}

and the AL loop validates its answers with :func:`~alseg_monai.selection.check_selection`.
Subclassing :class:`~alseg_monai.selection.Strategy` and decorating with
``@register_strategy("my_name")`` also makes it selectable by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["available_strategies", "get_strategy", "register_strategy"]

_STRATEGIES: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_strategy(name: str) -> Callable[[T], T]:
    """Class decorator registering a strategy class under ``name`` (and setting ``cls.name``).

    Raises:
        ConfigError: ``name`` is empty or already taken by another class, or the class has
            no ``select`` method.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register_strategy: name must be a non-empty string, got {name!r}")

    def decorate(cls: T) -> T:
        if not callable(getattr(cls, "select", None)):
            raise ConfigError(f"register_strategy({name!r}): {cls.__name__} has no select(context, budget) method")
        taken = _STRATEGIES.get(name)
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ConfigError(f"register_strategy: {name!r} is already registered to {taken.__qualname__}")
        cls.name = name
        _STRATEGIES[name] = cls
        return cls

    return decorate


def available_strategies() -> list[str]:
    """Sorted names of the registered strategies."""
    return sorted(_STRATEGIES)


def get_strategy(name: str, **kwargs: Any):
    """Build the strategy registered as ``name`` with its keyword settings ``kwargs``.

    Raises:
        ConfigError: an unknown name (the message lists the known ones), or a keyword the
            strategy does not take (the message lists those it takes), or an invalid value.
    """
    if name not in _STRATEGIES:
        raise ConfigError(f"strategy: unknown name {name!r}; expected one of {available_strategies()}")
    cls = _STRATEGIES[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(f"strategy {name!r}: invalid settings {sorted(kwargs)} ({err}); it takes {accepted}") from err
    return cls(**kwargs)
