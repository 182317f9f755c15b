"""Atomic writes: a reader never sees a half-written file.

Every file is written to a temporary sibling named ``.<name>.<pid>.<random>.tmp``,
flushed and fsynced, then moved over the target with :func:`os.replace` (atomic on
POSIX and Windows for paths on one filesystem). A crash leaves at most a stale temp
file, which readers ignore (its name never matches a real output) and
:func:`clean_stale_temp_files` removes, along with those of ignite's atomic ``DiskSaver``
(``tmp`` and 8 random characters, :func:`tempfile.NamedTemporaryFile`'s names).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import DataError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clean_stale_temp_files",
    "read_json",
    "save_npy_atomic",
    "torch_save_atomic",
]

TEMP_SUFFIX = ".tmp"
# The temporary checkpoint names of ignite's DiskSaver(atomic=True), from tempfile.NamedTemporaryFile.
_IGNITE_TEMP = re.compile(r"tmp[a-z0-9_]{8}")


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, or a power cut can undo it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; move it over ``path`` on success.

    On an exception inside the block the temporary file is removed and ``path`` is
    left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Serialise ``obj`` as JSON to ``path`` atomically (keys sorted, for stable diffs)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising :class:`DataError` naming the file when it is missing or invalid."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err})") from err


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (``path`` should end in ``.npy``)."""
    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def clean_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove temporary files left by interrupted atomic writes under ``directory``
    (this module's and ignite ``DiskSaver``'s checkpoints).

    Only call this when no other process is writing there (e.g. when a run starts).
    Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    stale = [*directory.rglob(f".*{TEMP_SUFFIX}"),
             *(p for p in directory.rglob("tmp*") if _IGNITE_TEMP.fullmatch(p.name))]
    for tmp in stale:
        if tmp.is_file():
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed
