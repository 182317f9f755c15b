"""What a strategy picked: slice position, spread over patients and volumes, classes present.

A Dice curve says how well a strategy did, not why. These figures show what it chose
(ARCHITECTURE.md, "Judging a strategy"): farthest-first picking on a badly scaled
embedding, for instance, shows as picks crowded at the apex and missing the RV long
before it shows as a low Dice. Every round's ``selection.json`` records them for this
round's picks (``added``) and for all labelled slices (``labelled``), beside the pool's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = []


def relative_position(z: int, depth: int) -> float:
    """Position of slice ``z`` in a stack of ``depth`` slices: 0 at the first slice (the
    base, for ACDC), 1 at the last (the apex); 0.5 for a single slice."""
    return 0.5 if depth <= 1 else float(z) / float(depth - 1)


def pick_diagnostics(
    records: Sequence[Mapping],
    depth_of: Callable[[str], int],
    label_of: Callable[[Mapping], np.ndarray | None],
    class_names: Sequence[str],
) -> dict:
    """Diagnostics of a set of slice records (JSON-ready).

    Args:
        records: slice records (``patient``, ``volume``, ``slice``).
        depth_of: volume id -> number of slices.
        label_of: record -> its (H, W) label map, or None where no full label is known
            (then no class shares are given).
        class_names: names of the foreground classes 1..K-1.

    Returns:
        ``{"slices", "position_mean", "position_sd", "patients", "volumes",
        "max_per_patient", "class_share"}``: the mean and SD of the relative slice position
        (:func:`relative_position`), the distinct patients and volumes, the most slices
        from one patient, and per class the share of slices containing it (None when a
        label is unknown).
    """
    if not records:
        return {"slices": 0, "position_mean": None, "position_sd": None, "patients": 0, "volumes": 0,
                "max_per_patient": 0, "class_share": None}
    positions = np.array([relative_position(int(r["slice"]), depth_of(r["volume"])) for r in records])
    per_patient = Counter(r["patient"] for r in records)
    labels = [label_of(r) for r in records]
    shares = None
    if all(label is not None for label in labels):
        present = np.array([[bool(np.any(np.asarray(label) == k)) for k in range(1, len(class_names) + 1)]
                            for label in labels])
        shares = {name: float(present[:, k].mean()) for k, name in enumerate(class_names)}
    return {
        "slices": len(records),
        "position_mean": float(positions.mean()),
        "position_sd": float(positions.std()),
        "patients": len(per_patient),
        "volumes": len({r["volume"] for r in records}),
        "max_per_patient": max(per_patient.values()),
        "class_share": shares,
    }
