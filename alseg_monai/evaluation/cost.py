"""Annotation cost, the x-axis of the paper's Figure 2.

A full slice mask costs 1 unit; a scribbled slice costs ``scribble_cost`` (the paper
takes scribbles to need 1/15 of a full mask's time); a volume costs its slices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ConfigError, DataError

__all__ = ["annotation_cost"]

LABEL_KINDS = ("full", "scribble")
SCRIBBLE_COST = 1.0 / 15.0


def _unit_cost(label_kind: str, scribble_cost: float) -> float:
    if label_kind not in LABEL_KINDS:
        raise ConfigError(f"label_kind: expected one of {LABEL_KINDS}, got {label_kind!r}")
    if not 0 < scribble_cost <= 1:
        raise ConfigError(f"scribble_cost: expected a fraction of a full mask in (0, 1], got {scribble_cost}")
    return 1.0 if label_kind == "full" else float(scribble_cost)


def annotation_cost(num_slices: int, label_kind: str = "full", scribble_cost: float = SCRIBBLE_COST) -> float:
    """Cost of annotating ``num_slices`` slices with full masks or scribbles, in full-mask units."""
    if int(num_slices) != num_slices or num_slices < 0:
        raise DataError(f"num_slices: expected a non-negative integer, got {num_slices}")
    return int(num_slices) * _unit_cost(label_kind, scribble_cost)


def volume_cost(volumes: Iterable[Mapping | int], label_kind: str = "full",
                scribble_cost: float = SCRIBBLE_COST) -> float:
    """Cost of annotating whole volumes: each costs its slices.

    ``volumes``: volume records (with ``num_slices``, the docs/design.md contract) or slice counts.
    """
    counts = []
    for volume in volumes:
        if isinstance(volume, Mapping):
            if "num_slices" not in volume:
                raise DataError(f"volume {volume.get('id', '?')}: record has no 'num_slices'")
            volume = volume["num_slices"]
        counts.append(volume)
    return sum(annotation_cost(count, label_kind, scribble_cost) for count in counts)


def cumulative_costs(slices_per_round: Iterable[int], label_kind: str = "full",
                     scribble_cost: float = SCRIBBLE_COST) -> list[float]:
    """Cumulative cost after each round, from the number of slices annotated in each round."""
    costs, total = [], 0.0
    for count in slices_per_round:
        total += annotation_cost(count, label_kind, scribble_cost)
        costs.append(total)
    return costs
