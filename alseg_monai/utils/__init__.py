"""Shared utilities: atomic file writes and seeding."""

from __future__ import annotations

from .io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temp_files,
    read_json,
    save_npy_atomic,
    torch_save_atomic,
)
from .seed import derive_seed, set_determinism

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clean_stale_temp_files",
    "derive_seed",
    "read_json",
    "save_npy_atomic",
    "set_determinism",
    "torch_save_atomic",
]
