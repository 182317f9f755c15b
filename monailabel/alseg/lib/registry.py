"""Which slices of which volume are annotated: the app's slice registry.

MONAI Label's datastore knows labels per *volume*; slice-based active learning needs
them per *slice*. The registry is one JSON file, ``<state_dir>/slices.json`` (by default
``<studies>/.alseg/slices.json``, next to the datastore's ``datastore_v2.json``)::

    {
      "version": 1,
      "requests": 3,                       # answers served so far (seeds random picks)
      "images": {
        "patient001_frame01": {
          "num_slices": 10,
          "annotated": [2, 7],             # slices whose label the app holds
          "pending": {"4": {"ts": 1764600000.0, "strategy": "gcl_coreset", "client_id": "..."}},
          "label_stamp": [1764600000123456789, 2048],   # last datastore label processed
          "history": [{"ts": ..., "slices": [2, 7], "source": "request", "client_id": ...}]
        }
      }
    }

Every change is a read-modify-write under an inter-process file lock
(``slices.json.lock``; the server and MONAI Label's training subprocess share the file)
and the file is replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

VERSION = 1
_HISTORY = 50  # entries kept per image


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "requests": 0, "images": {}}


def _atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class SliceRegistry:
    """The annotated and pending slices of every image, persisted in one JSON file."""

    def __init__(self, path: str | os.PathLike, lock_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)

    # ---- raw access ----------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """The registry as stored (an empty one when the file does not exist yet)."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return _empty()
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"{self.path}: not a version-{VERSION} slice registry")
        data.setdefault("images", {})
        data.setdefault("requests", 0)
        return data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Lock, read, let the caller change the dict, write it back atomically."""
        with self.lock:
            data = self.read()
            yield data
            _atomic_write_json(self.path, data)

    @staticmethod
    def entry(data: dict[str, Any], image_id: str, num_slices: int | None = None) -> dict[str, Any]:
        entry = data["images"].setdefault(image_id, {"annotated": [], "pending": {}, "history": []})
        if num_slices is not None:
            entry["num_slices"] = int(num_slices)
        return entry

    # ---- queries -----------------------------------------------------------------------
    def annotated(self, data: dict[str, Any] | None = None) -> dict[str, list[int]]:
        """image id -> sorted annotated slice indices (images without any left out)."""
        data = self.read() if data is None else data
        return {k: sorted(v.get("annotated", [])) for k, v in data["images"].items() if v.get("annotated")}

    def pending(self, data: dict[str, Any] | None = None, ttl: float | None = None,
                now: float | None = None) -> dict[str, list[int]]:
        """image id -> slices served but not labelled yet (only those younger than ``ttl``
        seconds when given)."""
        data = self.read() if data is None else data
        now = time.time() if now is None else now
        out = {}
        for image_id, entry in data["images"].items():
            slices = [int(k) for k, v in entry.get("pending", {}).items()
                      if ttl is None or now - float(v.get("ts", 0)) < ttl]
            if slices:
                out[image_id] = sorted(slices)
        return out

    # ---- changes -------------------------------------------------------------------------
    def add_pending(self, data: dict[str, Any], image_id: str, slices: Iterable[int], num_slices: int,
                    strategy: str, client_id: str | None = None) -> None:
        entry = self.entry(data, image_id, num_slices)
        now = time.time()
        for z in slices:
            entry["pending"][str(int(z))] = {"ts": now, "strategy": strategy, "client_id": client_id}
        data["requests"] = int(data.get("requests", 0)) + 1

    def mark_annotated(self, data: dict[str, Any], image_id: str, slices: Iterable[int], num_slices: int,
                       source: str, client_id: str | None = None) -> list[int]:
        """Add ``slices`` to the image's annotated set, drop them from its pending set, and
        log the change; returns the image's annotated slices."""
        entry = self.entry(data, image_id, num_slices)
        slices = sorted({int(z) for z in slices})
        entry["annotated"] = sorted(set(entry.get("annotated", [])) | set(slices))
        for z in slices:
            entry["pending"].pop(str(z), None)
        entry["history"] = (entry.get("history", []) + [
            {"ts": time.time(), "slices": slices, "source": source, "client_id": client_id}])[-_HISTORY:]
        return entry["annotated"]
