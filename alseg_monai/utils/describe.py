"""A JSON-able description of a component (a network, a loss, a transform chain, a factory).

A resumed run must refuse settings that change its results (docs: "The run directory,
resuming"); components are objects, so the run records what they are: the class or
function, its settings, the members of a ``Compose``, a module's parameter shapes. Two
equal components give equal descriptions; one changed knob changes it.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any

from torch import nn

__all__ = ["describe"]

_MAX_DEPTH = 6


def _name(obj: Any) -> str:
    kind = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', type(kind).__name__)}"


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def describe(obj: Any, depth: int = 0) -> Any:
    """What ``obj`` is, as JSON-able data (see the module docstring)."""
    if _plain(obj):
        return obj
    if depth > _MAX_DEPTH:
        return _name(obj)
    if isinstance(obj, functools.partial):
        return {"factory": _name(obj.func), "args": [describe(a, depth + 1) for a in obj.args],
                "kwargs": {k: describe(v, depth + 1) for k, v in sorted(obj.keywords.items())}}
    if isinstance(obj, (list, tuple)):
        return [describe(item, depth + 1) for item in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(describe(item, depth + 1) for item in obj)
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, nn.Module):
        # The architecture (every parameter's name and shape: weights are drawn per model)
        # and the module's own settings (a loss's weights, ...).
        parameters = [[n, list(p.shape)] for n, p in obj.named_parameters()]
        if not parameters:  # a loss: its parts (e.g. DiceCELoss's Dice and CE) hold its settings
            return {"module": _name(obj), "settings": _settings(obj, depth),
                    "parts": {n: describe(m, depth + 1) for n, m in obj.named_children()}}
        return {"module": _name(obj), "parameters": parameters, "settings": _settings(obj, depth)}
    members = getattr(obj, "transforms", None)
    if isinstance(members, (list, tuple)):
        return {"class": _name(obj), "transforms": [describe(t, depth + 1) for t in members],
                **{k: v for k, v in sorted(vars(obj).items()) if k in ("weights", "map_items", "unpack_items")
                   and _plain(v)}}
    if not isinstance(obj, type) and hasattr(obj, "tolist"):  # numpy and torch arrays, numpy scalars
        return describe(obj.tolist(), depth + 1)
    if isinstance(obj, type) or not hasattr(obj, "__dict__"):
        if callable(obj) or isinstance(obj, type):
            return _name(obj)
        text = repr(obj)  # e.g. torch.float32; an object's default repr holds its address, which says nothing
        return _name(obj) if " at 0x" in text else text
    settings = _settings(obj, depth)
    return {"class": _name(obj), **({"settings": settings} if settings else {})}


def _settings(obj: Any, depth: int) -> dict:
    # Public attributes; random states (R), modules' buffers and bound functions say nothing of the settings.
    return {k: describe(v, depth + 1) for k, v in sorted(vars(obj).items())
            if not k.startswith("_") and k not in ("R", "training") and not inspect.isroutine(v)}
