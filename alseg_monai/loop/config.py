"""The bundle's configuration from Python, and the misspelt-key check MONAI's parser lacks.

``python -m monai.bundle run --dataset_dri /data`` would silently add an unused key
``dataset_dri``. Overlays (a later config file, a ``--key value`` on the command line)
may add keys, as model-zoo's multi-GPU configs do; a key they add is accepted when some
expression of the merged config refers to it (``@key``), and refused as a misspelling,
naming the closest existing keys, when it is unused and close to an existing key.

:func:`load_config` and :func:`load_experiment` build the bundle from Python (the JSON
is the single source of defaults); :func:`check_bundle_overrides` runs in the bundle's
``initialize`` and checks the files and overrides of the command line (``sys.argv``).
"""

from __future__ import annotations

import ast
import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, find_alseg_error

__all__ = ["check_bundle_overrides", "load_config", "load_experiment"]

logger = logging.getLogger(__name__)

BUNDLE_DIR = Path(__file__).resolve().parents[2] / "bundles" / "slice_active_learning"
_ID_SEP = "#"
# Arguments of `monai.bundle run` that are not config overrides.
_RUN_ARGS = {"config_file", "meta_file", "logging_file", "args_file", "workflow_type", "workflow_name", "run_id",
             "init_id", "final_id", "tracking", "properties_path"}
_MISSPELT = 0.8  # difflib ratio at or above which an unused new key is taken for a typo


def _config_files(configs: Sequence[str | os.PathLike]) -> list[str]:
    configs_dir = BUNDLE_DIR / "configs"
    if not configs_dir.is_dir():
        raise ConfigError(f"the bundle's configs are not at {configs_dir}; install alseg_monai from its repository "
                          "(pip install -e .) to load them from Python")
    files = []
    for config in ["active_learning.json", *configs]:
        path = Path(config)
        files.append(str(path if path.is_absolute() or path.is_file() else configs_dir / path))
    return files


def load_config(configs: Sequence[str | os.PathLike] = (), overrides: Mapping[str, Any] | None = None):
    """The bundle's merged configuration as a MONAI ``ConfigParser``.

    Args:
        configs: config files after ``configs/active_learning.json`` (names relative to
            the bundle's ``configs`` folder, or paths), e.g. ``["data/phantom.json", "smoke.json"]``.
        overrides: ``{"key" or "a#b": value}``, as ``--key value`` on the command line.

    Raises:
        ConfigError: a misspelt key in a file or in ``overrides`` (see :func:`check_keys`).
    """
    from monai.bundle import ConfigParser

    files = _config_files(configs)
    parser = ConfigParser()
    parser.read_config(files)
    parser["bundle_root"] = str(BUNDLE_DIR)
    for key, value in dict(overrides or {}).items():
        parser[key] = value
    _check_added(files, dict(overrides or {}), parser.get())
    return parser


def load_experiment(configs: Sequence[str | os.PathLike] = (), overrides: Mapping[str, Any] | None = None):
    """The bundle's ``experiment`` (an :class:`~alseg_monai.loop.ActiveLearningExperiment`)
    built from the config files and overrides, as ``python -m monai.bundle run`` would.

    Raises:
        the project's own error (ConfigError, DataError) when building a component raised
        one, rather than MONAI's ``RuntimeError`` wrapping it.
    """
    parser = load_config(configs, overrides)
    try:
        return parser.get_parsed_content("experiment")
    except Exception as err:
        cause = find_alseg_error(err)
        if cause is None:
            raise
        raise cause from err


def check_keys(config: Mapping, ids: Sequence[str], source: str, merged: Mapping | None = None) -> None:
    """Raise :class:`ConfigError` for an id of ``ids`` (``a#b#c`` paths) that ``config``
    lacks and that looks like a misspelling: nothing in ``merged`` (the merged config)
    refers to it, and it is close to a key that exists. Other added keys are accepted."""
    used = _references(merged) if merged is not None else set()
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
            path = _ID_SEP.join(config_id.split(_ID_SEP)[: depth + 1])
            if path in used:
                break  # an added key that the config uses
            close = difflib.get_close_matches(part, known, n=3, cutoff=_MISSPELT if merged is not None else 0.6)
            if merged is not None and not close:
                logger.warning("%s adds the key %r, which no expression of the config uses", source, path)
                break
            parent = _ID_SEP.join(config_id.split(_ID_SEP)[:depth]) or "the top level"
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown config key {config_id!r} ({source}): {part!r} is not a key of {parent}{hint} "
                f"Known keys: {', '.join(known)}"
            )


def _references(config: Any) -> set[str]:
    """Every id an expression or reference of ``config`` names (``@a#b``, ``%a``), with its parents."""
    found: set[str] = set()
    for match in re.finditer(r"[@%]([A-Za-z_][\w#]*)", json.dumps(config, default=str)):
        parts = match.group(1).split(_ID_SEP)
        found.update(_ID_SEP.join(parts[: i + 1]) for i in range(len(parts)))
    return found


def _check_added(files: Sequence[str], overrides: Mapping[str, Any], merged: Mapping) -> None:
    from monai.bundle import ConfigParser

    base = ConfigParser.load_config_file(files[0])
    for later in files[1:]:
        check_keys(base, list(ConfigParser.load_config_file(later)), f"in {later}", merged)
    check_keys(base, list(overrides), "given on the command line", merged)


def _command_line(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]] | None:
    """The config files and overrides of a ``python -m monai.bundle run`` command line, or
    None when ``argv`` is not one (e.g. the Python API)."""
    args = list(argv[1:])
    if not args or args[0] != "run" or "monai" not in str(argv[0]) or "bundle" not in str(argv[0]):
        return None
    options: dict[str, Any] = {}
    index = 1
    while index < len(args):
        token = args[index]
        if token.startswith("--"):
            key, _, value = token[2:].partition("=")
            if not _ and index + 1 < len(args) and not args[index + 1].startswith("--"):
                value, index = args[index + 1], index + 1
            normalised = key.replace("-", "_")  # fire accepts --config-file for --config_file
            options[normalised if normalised in _RUN_ARGS else key] = value
        index += 1
    files = options.pop("config_file", None)
    if files is None:
        return None
    try:
        files = ast.literal_eval(files) if isinstance(files, str) and files.strip().startswith("[") else files
    except (ValueError, SyntaxError):
        pass
    files = [files] if isinstance(files, str) else list(files)
    return files, {k: v for k, v in options.items() if k not in _RUN_ARGS}


def check_bundle_overrides(argv: Sequence[str] | None = None) -> bool:
    """In a ``python -m monai.bundle run`` command (read from ``sys.argv``), check that every
    key of the second and later config files and of the command-line overrides exists in
    the first file, or is an added key the config uses (see :func:`check_keys`).

    Returns:
        True when a bundle run was found and checked, False otherwise (e.g. the Python API).

    Raises:
        ConfigError: naming the misspelt key, with close matches and the known keys.
    """
    found = _command_line(sys.argv if argv is None else argv)
    if found is None:
        logger.debug("not a monai.bundle run command line: no override check")
        return False
    files, overrides = found
    from monai.bundle import ConfigParser

    merged = ConfigParser()
    merged.read_config(files)
    for key, value in overrides.items():
        merged[key] = value
    _check_added(files, overrides, merged.get())
    return True
