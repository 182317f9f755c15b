"""Integer group ids of a batch for the group losses of the paper's Eq. 5.

The patient and volume groups come straight from the slices' records. The
adjacent-slice group comes from the batch layout of :class:`GroupBatchSampler`: a
batch is a run of sampler groups of ``len(roles)`` consecutive slices each, with roles
in the order ``roles`` (e.g. ``("anchor", "adjacent", "volume", "patient")``).
Within one sampler group the anchor and its adjacent member share a slice-group id;
every other slice is a slice group of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DataError

__all__ = []

# Members of a sampler group always come in this order (paper Algorithm 1, line 9).
ROLE_ORDER = ("anchor", "adjacent", "volume", "patient")


def encode_ids(values: Sequence[str]) -> torch.Tensor:
    """(N,) int64 codes of string ids: equal strings get equal codes."""
    _, codes = np.unique(np.asarray(list(values), dtype=object).astype(str), return_inverse=True)
    return torch.as_tensor(codes.reshape(-1), dtype=torch.long)


def batch_group_ids(
    patients: Sequence[str], volumes: Sequence[str], roles: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Group ids of the patient, volume and adjacent-slice losses for one batch.

    Args:
        patients: (N,) patient id of each slice of the batch, in batch order.
        volumes: (N,) volume id of each slice.
        roles: the roles of one sampler group in order (``GroupBatchSampler.roles``);
            N must be a multiple of ``len(roles)``.

    Returns:
        ``{"patient": (N,), "volume": (N,), "slice": (N,)}`` int64 tensors.

    Raises:
        DataError: lengths disagree, N is not a multiple of the group size, or the
            roles are not in :data:`ROLE_ORDER` order starting with ``"anchor"``.
    """
    n, group_size = len(patients), len(roles)
    if len(volumes) != n:
        raise DataError(f"batch_group_ids: {n} patients but {len(volumes)} volumes")
    if not roles or roles[0] != "anchor" or list(roles) != [r for r in ROLE_ORDER if r in roles]:
        raise DataError(
            f"batch_group_ids: roles must be a sub-sequence of {ROLE_ORDER} starting with 'anchor', got {tuple(roles)}"
        )
    if n % group_size:
        raise DataError(
            f"batch_group_ids: batch of {n} slices is not a whole number of groups of {group_size} ({tuple(roles)})"
        )
    position = torch.arange(n) % group_size
    group_start = torch.arange(n) - position
    if "adjacent" in roles:
        # The adjacent member joins its anchor's slice group (the anchor sits at position 0).
        position = torch.where(position == roles.index("adjacent"), torch.zeros_like(position), position)
    return {
        "patient": encode_ids(patients),
        "volume": encode_ids(volumes),
        "slice": group_start + position,
    }
