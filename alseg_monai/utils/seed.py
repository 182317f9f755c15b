"""Seeding: one experiment seed, and named sub-seeds derived from it."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, *names: object) -> int:
    """A stable 31-bit seed for the sub-task ``names`` of an experiment seeded with ``seed``.

    ``derive_seed(0, "round", 3, "model", 1)`` is the same on every machine and run,
    and differs between sub-tasks, so rounds, repeats and models draw independent
    random streams without sharing a global generator.
    """
    key = "/".join([str(int(seed)), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF
