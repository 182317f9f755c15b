"""Batch sampler for group contrastive learning (paper Appendix C, Algorithm 1).

Random batches rarely hold two slices of one patient, volume or adjacent pair, so
the group losses of Eq. 5 would see almost no positives. The sampler builds, for
every anchor slice, a group [anchor, adjacent slice, other slice of the volume,
other slice of the patient] (members of unused groupings left out) and fills each
batch with groups of distinct patients.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import ConfigError, DataError
from ..utils import derive_seed
from .groups import ROLE_ORDER

__all__ = ["GroupBatchSampler"]

# Grouping name -> the role of the member it adds to every group.
GROUPINGS = {"slice": "adjacent", "volume": "volume", "patient": "patient"}


def paper_batch_size(group_size: int) -> int:
    """The paper's batch size for a group size: 9 for groups of 3 (two groupings), else 8."""
    return 9 if group_size == 3 else 8


class GroupBatchSampler(Sampler[list[int]]):
    """Batches of slice groups from distinct patients, redrawn every epoch.

    Group creation (Algorithm 1, lines 1-14), for every slice ``s`` (the anchor) of
    ``records``, members in this fixed order, each only if its grouping is used:

    - ``"slice"``: the adjacent slice, the next or previous slice of the same volume
      in z order (at random; forced at the volume's ends);
    - ``"volume"``: another slice of the same volume, uniformly at random;
    - ``"patient"``: another slice of the same patient (any of its volumes), uniformly.

    Fallbacks: in a volume of one slice the adjacent and volume members are the anchor
    itself (the two copies still get different augmentations); for a patient with a
    single slice, so is the patient member. A warning says how many slices fall back,
    once, when the sampler is built. A patient with one volume needs no fallback: its
    patient member then comes from that volume.

    Batch creation (lines 15-31): a batch is ``batch_size / group_size`` groups of
    distinct patients and every anchor is used at most once per epoch. It proceeds in
    rounds: in each round every patient with groups left offers its next group (a
    random order per patient), the offers are shuffled and cut into batches, and the
    ``r mod k`` offers that do not fill a batch are held back for the next round (those
    of the patients with the fewest groups left, ties at random). The epoch ends when
    fewer patients than groups per batch have groups left, as in the paper. Compared
    with drawing one random patient at a time this mixes patients as well, is
    vectorised (one epoch of 100,000 slices in well under a second) and gives the same
    number of batches every epoch, which ignite's fixed epoch length and DDP need.
    Batches are then shuffled.

    Layout of a batch: ``batch[g * group_size : (g + 1) * group_size]`` is one group,
    its roles given by :attr:`roles` (a sub-sequence of
    ``("anchor", "adjacent", "volume", "patient")``); see
    :func:`~alseg_monai.contrastive.batch_group_ids`.

    Args:
        records: slice records (mappings with ``patient``, ``volume`` and int ``slice``);
            the sampler yields indices into this sequence.
        batch_size: slices per batch, a multiple of the group size
            (``1 + len(groupings)``); None: the paper's, see :func:`paper_batch_size`.
        groupings: any of ``"slice"``, ``"volume"``, ``"patient"`` (order irrelevant);
            empty gives plain batches of single slices from distinct patients.
        seed: the epoch's draws depend only on ``(seed, epoch)``.
        num_replicas: number of distributed ranks; the epoch's batches are dealt
            round-robin, so ranks get disjoint batches, and the last
            ``len % num_replicas`` batches are dropped so every rank gets as many.
        rank: this process's rank in ``[0, num_replicas)``.
        drop_last: when False, the groups left at the end of the epoch (one from each
            of fewer than ``batch_size / group_size`` patients) form one last, smaller batch.

    Raises:
        ConfigError: an unknown grouping, a batch size that is not a positive multiple
            of the group size (also a ``ValueError``), a bad rank, or fewer patients
            than groups per batch.
        DataError: a record lacks ``patient``, ``volume`` or ``slice``, a volume spans
            two patients, or a (volume, slice) pair repeats.
    """

    def __init__(
        self,
        records: Sequence[Mapping],
        batch_size: int | None = None,
        groupings: Sequence[str] = ("patient", "volume"),
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = True,
    ) -> None:
        self.roles = _roles(groupings)
        self.group_size = len(self.roles)
        if batch_size is None:
            batch_size = paper_batch_size(self.group_size)
        integer = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
        if not integer or batch_size < self.group_size or batch_size % self.group_size:
            raise ConfigError(
                f"GroupBatchSampler: batch_size must be a positive multiple of the group size "
                f"{self.group_size} (roles {self.roles}), got {batch_size}; "
                f"the paper uses {paper_batch_size(self.group_size)}"
            )
        if not (num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ConfigError(
                f"GroupBatchSampler: need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}"
            )
        self.batch_size = int(batch_size)
        self.groups_per_batch = self.batch_size // self.group_size
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._index = _SliceIndex(records)
        if self._index.num_patients < self.groups_per_batch:
            raise ConfigError(
                f"GroupBatchSampler: batch_size {batch_size} needs {self.groups_per_batch} distinct patients "
                f"per batch, but the records hold {self._index.num_patients}"
            )
        self._warn_fallbacks()
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` (same seed and epoch, same batches)."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.set_epoch(state["epoch"])

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        # Every epoch has the same number of batches (see the class docstring).
        return len(self._batches())

    def _batches(self) -> list[list[int]]:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self.epoch_batches(self.epoch))
        return self._cache[1]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``: lists of indices into ``records``."""
        rng = np.random.default_rng(derive_seed(self.seed, "group_batch_sampler", epoch))
        members = self._index.draw_members(self.roles, rng)
        full, tail = _deal_groups(self._index, self.groups_per_batch, rng)
        batches = members[full].reshape(full.shape[0], -1).tolist()
        if tail is not None and not self.drop_last:
            batches.append(members[tail].reshape(-1).tolist())
        per_rank = len(batches) // self.num_replicas
        return batches[self.rank :: self.num_replicas][:per_rank]

    def _warn_fallbacks(self) -> None:
        index, notes = self._index, []
        if {"adjacent", "volume"} & set(self.roles) and index.single_slice_volumes:
            notes.append(
                f"{index.single_slice_volumes} volume(s) of one slice use the anchor as their adjacent/volume member"
            )
        if "patient" in self.roles and index.single_slice_patients:
            notes.append(
                f"{index.single_slice_patients} patient(s) of one slice use the anchor as their patient member"
            )
        if notes:
            warnings.warn("GroupBatchSampler: " + "; ".join(notes), stacklevel=3)


def _roles(groupings: Sequence[str]) -> tuple[str, ...]:
    if isinstance(groupings, str):
        groupings = (groupings,)
    groupings = list(groupings)
    unknown = [g for g in groupings if g not in GROUPINGS]
    if unknown or len(set(groupings)) != len(groupings):
        raise ConfigError(
            f"GroupBatchSampler: groupings must be distinct names from {sorted(GROUPINGS)}, got {groupings}"
        )
    used = {GROUPINGS[g] for g in groupings} | {"anchor"}
    return tuple(role for role in ROLE_ORDER if role in used)


class _SliceIndex:
    """Slices sorted by (patient, volume, z), with each slice's volume and patient block."""

    def __init__(self, records: Sequence[Mapping]) -> None:
        if len(records) == 0:
            raise DataError("GroupBatchSampler: records is empty")
        patients, volumes, z = _record_columns(records)
        _, patient_code = np.unique(patients, return_inverse=True)
        _, volume_code = np.unique(volumes, return_inverse=True)
        order = np.lexsort((z, volume_code, patient_code))
        self.order = order
        self.patient = patient_code[order]
        volume, z = volume_code[order], z[order]
        _check_nesting(volume, self.patient, z, volumes[order])
        self.volume_start, self.volume_len, self.volume_rank = _blocks(volume)
        self.patient_start, self.patient_len, self.patient_rank = _blocks(self.patient)
        self.num_patients = int(self.patient[-1]) + 1
        # Anchors of patient p occupy sorted positions [offset[p], offset[p] + count[p]).
        self.patient_count = np.bincount(self.patient, minlength=self.num_patients)
        self.patient_offset = np.concatenate([[0], np.cumsum(self.patient_count)[:-1]])
        self.single_slice_volumes = int(np.sum(self.volume_len[self.volume_rank == 0] == 1))
        self.single_slice_patients = int(np.sum(self.patient_count == 1))

    def draw_members(self, roles: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
        """(n, len(roles)) record indices: row i is the group of the i-th sorted anchor."""
        n = self.order.shape[0]
        anchor = np.arange(n)
        columns = []
        for role in roles:
            if role == "anchor":
                columns.append(anchor)
            elif role == "adjacent":
                columns.append(self._adjacent(rng))
            elif role == "volume":
                columns.append(_other_in_block(self.volume_start, self.volume_len, self.volume_rank, rng))
            else:
                columns.append(_other_in_block(self.patient_start, self.patient_len, self.patient_rank, rng))
        return self.order[np.stack(columns, axis=1)]

    def _adjacent(self, rng: np.random.Generator) -> np.ndarray:
        n = self.order.shape[0]
        step = np.where(rng.random(n) < 0.5, -1, 1)
        step = np.where(self.volume_rank == 0, 1, step)
        step = np.where(self.volume_rank == self.volume_len - 1, -1, step)
        step = np.where(self.volume_len == 1, 0, step)
        return np.arange(n) + step


def _record_columns(records: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        patients = np.array([r["patient"] for r in records], dtype=object).astype(str)
        volumes = np.array([r["volume"] for r in records], dtype=object).astype(str)
        z = np.array([r["slice"] for r in records])
    except (KeyError, TypeError) as err:
        keys = ("patient", "volume", "slice")
        bad = next(
            (i for i, r in enumerate(records) if not isinstance(r, Mapping) or any(k not in r for k in keys)), None
        )
        where = f"record {bad} ({records[bad]!r})" if bad is not None else "a record"
        raise DataError(f"GroupBatchSampler: {where} is not a mapping with keys {keys}") from err
    if z.dtype.kind not in "iu":
        raise DataError(f"GroupBatchSampler: record 'slice' values must be integers, got dtype {z.dtype}")
    return patients, volumes, z.astype(np.int64)


def _check_nesting(volume: np.ndarray, patient: np.ndarray, z: np.ndarray, volume_names: np.ndarray) -> None:
    same_volume = volume[1:] == volume[:-1]
    repeated = np.flatnonzero(same_volume & (z[1:] == z[:-1]))
    if repeated.size:
        i = repeated[0]
        raise DataError(
            f"GroupBatchSampler: slice {z[i]} of volume {volume_names[i]!r} appears more than once in records"
        )
    volume_patients = np.unique(np.stack([volume, patient]), axis=1)
    if volume_patients.shape[1] != np.unique(volume).size:
        shared = np.unique(volume_patients[0], return_counts=True)
        name = volume_names[np.flatnonzero(volume == shared[0][shared[1] > 1][0])[0]]
        raise DataError(f"GroupBatchSampler: volume {name!r} belongs to more than one patient in records")


def _blocks(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position of a sorted code array: start and length of its run, and its rank in the run."""
    n = sorted_codes.shape[0]
    starts = np.flatnonzero(np.concatenate([[True], sorted_codes[1:] != sorted_codes[:-1]]))
    lengths = np.diff(np.concatenate([starts, [n]]))
    run = np.repeat(np.arange(starts.size), lengths)
    start = starts[run]
    return start, lengths[run], np.arange(n) - start


def _other_in_block(start: np.ndarray, length: np.ndarray, rank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn other position of each position's block (itself for blocks of one)."""
    offset = 1 + np.floor(rng.random(start.shape[0]) * (length - 1)).astype(np.int64)
    return start + (rank + offset) % length


def _deal_groups(index: _SliceIndex, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Deal anchors (sorted positions) into batches of ``k`` from distinct patients.

    Returns the full batches as a (B, k) array, rows in random order, and the anchors left over
    at the end (one per remaining patient, fewer than k), or None.
    """
    # Each patient's anchors in a random order: its queue for this epoch.
    queue = np.lexsort((rng.random(index.patient.shape[0]), index.patient))
    remaining = index.patient_count.copy()
    used = np.zeros_like(remaining)
    active = np.flatnonzero(remaining)
    rounds = []
    while active.size >= k:
        take = active.size - active.size % k
        if take < active.size:
            # Hold back the offers of the patients with the fewest groups left: this
            # keeps the epoch length independent of the draws.
            priority = np.lexsort((rng.random(active.size), -remaining[active]))
            chosen = rng.permutation(active[priority[:take]])
        else:
            chosen = rng.permutation(active)
        rounds.append(queue[index.patient_offset[chosen] + used[chosen]].reshape(-1, k))
        used[chosen] += 1
        remaining[chosen] -= 1
        active = active[remaining[active] > 0]
    full = np.concatenate(rounds)[rng.permutation(sum(r.shape[0] for r in rounds))]
    tail = queue[index.patient_offset[active] + used[active]] if active.size else None
    return full, tail
