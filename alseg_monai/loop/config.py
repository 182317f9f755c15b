"""Checks of the bundle configuration that MONAI's parser does not make.

``python -m monai.bundle run --dataset_dri /data`` would silently add an unused key
``dataset_dri``; :func:`check_bundle_overrides` turns that into an error naming the key.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Mapping, Sequence

from ..errors import ConfigError

__all__ = ["check_bundle_overrides", "check_keys"]

logger = logging.getLogger(__name__)
_ID_SEP = "#"


def check_keys(config: Mapping, ids: Sequence[str], source: str) -> None:
    """Raise :class:`ConfigError` for an id of ``ids`` (``a#b#c`` paths) missing from ``config``."""
    for config_id in ids:
        node = config
        config_id = str(config_id).lstrip("+")  # "+key" is MONAI's merge syntax for the same key
        for depth, part in enumerate(config_id.split(_ID_SEP)):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
                continue
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, (Mapping, list)):
                break  # overriding inside a value that is not a dict (e.g. a string) is MONAI's business
            known = sorted(node) if isinstance(node, Mapping) else []
            parent = _ID_SEP.join(config_id.split(_ID_SEP)[:depth]) or "the top level"
            close = difflib.get_close_matches(part, known, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown config key {config_id!r} ({source}): {part!r} is not a key of {parent}{hint} "
                f"Known keys: {', '.join(known)}"
            )


def _workflow_frame_args():
    """``(config_file, override dict)`` of the ``monai.bundle`` ``create_workflow`` call that
    is running this code, or None outside a bundle run.

    MONAI's parser does not keep which keys came from the command line, so they are read
    from the frame of ``create_workflow`` (its locals ``config_file`` and ``_args``).
    """
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "create_workflow" and "monai" in code.co_filename and "_args" in frame.f_locals:
            return frame.f_locals.get("config_file"), dict(frame.f_locals["_args"])
        frame = frame.f_back
    return None


def check_bundle_overrides() -> bool:
    """In a ``python -m monai.bundle run`` call, check that every command-line override and
    every key of the second and later config files names a key of the first config file.

    Returns:
        True when a bundle run was found and checked, False otherwise (e.g. the Python API).

    Raises:
        ConfigError: naming the unknown key, with close matches and the known keys.
    """
    found = _workflow_frame_args()
    if found is None:
        logger.debug("not inside a monai.bundle run: no override check")
        return False
    config_file, args = found
    from monai.bundle import ConfigParser, ConfigWorkflow

    workflow_args = set(inspect.signature(ConfigWorkflow.__init__).parameters) | {"workflow_type", "args_file"}
    files = [config_file] if isinstance(config_file, str) else list(config_file or [])
    if not files:
        return False
    base = ConfigParser.load_config_file(files[0])
    merged = ConfigParser(dict(base))
    for later in files[1:]:
        content = ConfigParser.load_config_file(later)
        check_keys(base, list(content), f"in {later}")
        merged.update(content)
    overrides = [key for key in args if key not in workflow_args]
    check_keys(merged.get(), overrides, "given on the command line")
    return True
