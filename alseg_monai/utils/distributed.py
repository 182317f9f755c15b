"""Data-parallel runs with ``torch.distributed`` (one process per GPU, started by ``torchrun``),
on top of ``ignite.distributed`` (``idist``).

Every function here is a no-op or an identity when no process group is initialised, so
single-process code calls them unconditionally: ``rank()`` is 0, ``world_size()`` 1,
``barrier()`` returns at once, ``gather_rows`` returns its input, and
``main_process_only`` functions simply run. Join the group with :func:`init_distributed`:
it also registers the group with ignite once, which ignite's collectives (and its metrics'
reductions) need.

Conventions of the toolkit's distributed runs (see docs/distributed.md):

- Rank 0 writes every file (checkpoints, TensorBoard, reports); other ranks wait at a
  :func:`barrier` before reading anything rank 0 wrote, so they never see a file that
  is being written.
- Work over a list of N records is split with :func:`shard_indices` (contiguous blocks)
  and reassembled in record order with :func:`gather_rows`, so every rank ends with
  the same array a single process would compute.
- Decisions that must agree (a selection's picks, whether a step is already on disk)
  are taken on rank 0 and sent to all with :func:`broadcast_object`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
import torch.distributed as dist
from monai.utils import evenly_divisible_all_gather
from torch import nn

from ..errors import ConfigError, DataError
from .seed import derive_seed

__all__ = [
    "barrier",
    "broadcast_module",
    "broadcast_object",
    "ddp_wrap",
    "destroy_distributed",
    "gather_rows",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "local_device",
    "main_process_first",
    "main_process_only",
    "rank",
    "rank_seed",
    "shard_indices",
    "unwrap_model",
    "world_size",
]

logger = logging.getLogger(__name__)

_BACKENDS = ("nccl", "gloo", "mpi")
# Variables torchrun (torch.distributed.run) sets for every worker; without them there is
# no process group to join and the run is a single process.
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

# ignite's functions under the names the package and the bundle configs call.
rank = idist.get_rank
world_size = idist.get_world_size
barrier = idist.barrier
destroy_distributed = idist.finalize
# Runs the decorated function on rank 0 only; other ranks skip it and get None (no barrier).
main_process_only = idist.one_rank_only()


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised (also a one-rank group)."""
    # A torch query: ignite's (idist.backend()) re-reads an unregistered group, a collective, at every call.
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True on rank 0, the process that writes files (always True when not distributed)."""
    # ignite has rank-filtering decorators and context managers, but no predicate.
    return idist.get_rank() == 0


def local_device() -> torch.device:
    """This process's device: ``cuda:<LOCAL_RANK>`` when torch sees a GPU, else ``cpu``.

    In a process group this is ``idist.device()``, the GPU :func:`init_distributed` made
    current: ``LOCAL_RANK`` is not read again, because ignite rewrites it from
    ``SLURM_LOCALID`` when it registers a group under SLURM.

    Raises:
        ConfigError: ``LOCAL_RANK`` is not a non-negative integer or names a GPU this node
            does not have.
    """
    # Not idist.device() alone: without a group it answers "cuda" with no index, or "mps".
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if is_distributed():
        return idist.device()
    value = os.environ.get("LOCAL_RANK", "0")
    if not value.isdigit():
        raise ConfigError(f"LOCAL_RANK={value!r}: expected a non-negative integer (set by torchrun)")
    if int(value) >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK={value} but this node has {torch.cuda.device_count()} visible GPU(s); "
            "start at most that many processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", int(value))


def init_distributed(
    backend: str | None = None, timeout_minutes: float = 60.0, log_all_ranks: bool = False
) -> torch.device:
    """Join the process group of a ``torchrun`` launch and return this process's device.

    Idempotent: a second call returns the device. Outside torchrun (the launcher's
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` unset) nothing is
    initialised and the single process's device is returned, so a multi-GPU config also
    runs as one process. Leave the group with :func:`destroy_distributed` (``idist.finalize``).

    Args:
        backend: ``nccl``, ``gloo`` or ``mpi``; None: ``nccl`` when torch sees a GPU, else ``gloo``.
        timeout_minutes: how long a collective waits for the other ranks before failing.
            Longer than torch's default (10 minutes for nccl) because the other ranks wait
            while rank 0 alone decodes the dataset into the slice cache or writes a report.
        log_all_ranks: keep INFO logging on every rank; by default ranks other than 0 log
            warnings and errors only (the root logger's level), so messages are not repeated.

    Returns:
        ``cuda:<LOCAL_RANK>`` (made the current CUDA device) or ``cpu``.

    Raises:
        ConfigError: an unknown backend, ``nccl`` without a GPU, a non-positive timeout,
            or ``LOCAL_RANK`` beyond this node's GPUs.
    """
    # Not idist.initialize: it refuses torchrun under srun on several nodes, and takes no nccl device_id.
    device = local_device()
    if is_distributed():
        return device
    missing = [name for name in _LAUNCHER_VARIABLES if name not in os.environ]
    if missing:
        logger.info("not launched by torchrun (%s unset): running as a single process on %s",
                    ", ".join(missing), device)
        return device
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if backend not in _BACKENDS:
        raise ConfigError(f"init_distributed: backend={backend!r}; expected one of {list(_BACKENDS)}")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("init_distributed: backend 'nccl' needs CUDA GPUs; use 'gloo' on CPU")
    if not timeout_minutes > 0:
        raise ConfigError(f"init_distributed: timeout_minutes must be positive, got {timeout_minutes}")
    kwargs: dict[str, Any] = {"timeout": datetime.timedelta(minutes=timeout_minutes)}
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if backend == "nccl":
        # Binding the group to this rank's GPU lets barriers and object collectives use it.
        kwargs["device_id"] = device
    dist.init_process_group(backend=backend, **kwargs)
    # Registered once here; unregistered, ignite would re-read the group (a collective) at every call.
    idist.sync()
    logger.info("rank %d of %d joined the %s process group on %s", rank(), world_size(), backend, device)
    if not log_all_ranks and rank() > 0:
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    return device


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object), returned on every rank; ``obj`` itself
    when not distributed. Every rank must call it; only ``src``'s argument matters."""
    # Not idist.broadcast: it takes tensors, numbers, strings and paths, callers send lists, flags and None.
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard_indices(n: int, num_shards: int | None = None, shard: int | None = None) -> np.ndarray:
    """The record indices this rank handles: a contiguous block of ``range(n)``.

    Blocks follow rank order and differ in size by at most one (``np.array_split``), so
    concatenating every rank's block gives ``range(n)``; with fewer records than ranks
    some blocks are empty.

    Args:
        n: number of records.
        num_shards: number of blocks (default: the world size).
        shard: which block (default: this rank).

    Returns:
        (n_shard,) int64 indices, increasing.

    Raises:
        ConfigError: ``n`` < 0 or ``shard`` outside ``[0, num_shards)``.
    """
    # Not DistributedSampler's split: it interleaves and pads, and gather_rows expects blocks.
    num_shards = world_size() if num_shards is None else int(num_shards)
    shard = rank() if shard is None else int(shard)
    if int(n) < 0 or num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(
            f"shard_indices: need n >= 0 and 0 <= shard < num_shards, got n={n}, shard={shard}, num_shards={num_shards}"
        )
    return np.array_split(np.arange(int(n), dtype=np.int64), num_shards)[shard]


def _check_shard(local: Any, indices: np.ndarray, n: int) -> None:
    if len(local) != len(indices):
        shape = tuple(local.shape) if hasattr(local, "shape") else (len(local),)
        raise DataError(
            f"gather_rows: {len(indices)} indices for local rows of shape {shape}; expected one row per index"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise DataError(
            f"gather_rows: indices must lie in [0, {n}), got values from {indices.min()} to {indices.max()}"
        )


def _check_cover(indices: np.ndarray, n: int) -> None:
    if indices.size != n or np.bincount(indices, minlength=n).max(initial=1) != 1:
        raise DataError(
            f"gather_rows: the ranks' indices must cover each of the {n} records exactly once, "
            f"got {indices.size} indices ({len(np.unique(indices))} distinct)"
        )


def gather_rows(
    local: np.ndarray | torch.Tensor | Sequence[Any], indices: Sequence[int] | np.ndarray, n: int
) -> np.ndarray | list[Any]:
    """Reassemble rows computed on every rank into the full array, in record order, on every rank.

    Rank ``r`` passes the rows it computed (``local[i]`` is record ``indices[i]``, e.g.
    for ``indices = shard_indices(n)``); every rank gets the (n, ...) result. Numeric
    arrays (numpy or torch, any trailing shape, possibly zero rows on a rank) travel as
    tensors; a list of Python objects (e.g. ids) is gathered by pickling and returned as
    a list. Not distributed, ``local`` is put in ``indices`` order (returned as is when
    ``indices`` is ``range(n)``).

    Raises:
        DataError: ``local`` and ``indices`` differ in length, indices out of range, the
            ranks' indices do not cover every record exactly once, or ranks disagree on
            the trailing shape or dtype.
    """
    # ignite and MONAI gather in rank order; this puts rows back in record order, lists too.
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    n = int(n)
    if isinstance(local, torch.Tensor):
        local = local.detach().cpu().numpy()
    if not isinstance(local, np.ndarray):
        return _gather_objects(list(local), indices, n)
    _check_shard(local, indices, n)
    if not is_distributed():
        _check_cover(indices, n)
        if np.array_equal(indices, np.arange(n)):
            return local
        out = np.empty_like(local)
        out[indices] = local
        return out
    return _gather_arrays(local, indices, n)


def _gather_objects(local: list[Any], indices: np.ndarray, n: int) -> list[Any]:
    _check_shard(local, indices, n)
    parts = idist.all_gather((indices, local))  # pickled; [(indices, local)] in a single process
    _check_cover(np.concatenate([part[0] for part in parts]), n)
    out: list[Any] = [None] * n
    for part_indices, part in parts:
        for index, item in zip(part_indices.tolist(), part):
            out[index] = item
    return out


def _gather_arrays(local: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    metas = idist.all_gather((indices, local.shape[1:], local.dtype.str))
    shaped = [(shape, dtype) for part, shape, dtype in metas if len(part)]
    if len(set(shaped)) > 1:
        raise DataError(f"gather_rows: ranks sent rows of different trailing shapes or dtypes: {shaped}")
    # Every rank holds every rank's indices and shapes, so all ranks raise here together.
    order = np.concatenate([part for part, _, _ in metas])
    _check_cover(order, n)
    trailing, dtype = shaped[0] if shaped else (local.shape[1:], local.dtype.str)
    dtype = np.dtype(dtype)
    # A rank without rows takes the others' trailing shape and dtype, so every rank sends the same kind.
    rows = np.ascontiguousarray(local.reshape(len(local), *trailing), dtype=dtype)
    # bool is not a collective dtype everywhere; its bytes travel as uint8.
    wire = rows.view(np.uint8) if dtype == np.bool_ else rows
    gathered = evenly_divisible_all_gather(torch.from_numpy(wire), concat=True).numpy()
    out = np.empty((n, *trailing), dtype=wire.dtype)
    out[order] = gathered
    return out.view(np.bool_) if dtype == np.bool_ else out


def broadcast_module(module: nn.Module, src: int = 0) -> nn.Module:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank, in place.

    Data-parallel training keeps parameters equal on all ranks, but each rank's BatchNorm
    running statistics follow its own batches; after this every rank holds exactly
    ``src``'s model (the one rank 0 saves). Returns ``module``.
    """
    # ignite broadcasts single tensors only, and DDP copies rank 0's state once, when it wraps.
    if not is_distributed():
        return module
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if not isinstance(tensor, torch.Tensor):
                continue
            # Collectives need dense tensors (channels-last weights travel as copies); idist moves
            # them to the backend's device and back.
            wire = idist.broadcast(tensor.contiguous(), src=src)
            if wire is not tensor:
                tensor.copy_(wire)
    return module


def ddp_wrap(module: nn.Module, device: torch.device | str | None = None, **kwargs: Any) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when distributed, else ``module`` itself.

    The module must already be on ``device``; on CUDA its GPU is the one DDP uses.
    Gradients are averaged across ranks at every backward, so each rank's loss is over its
    own batch. Save ``unwrap_model(wrapped).state_dict()``, never the wrapper's.

    Args:
        module: the network.
        device: its device (default: the device of its first parameter).
        kwargs: further ``DistributedDataParallel`` arguments.
    """
    # Not idist.auto_model: it turns a single process on a multi-GPU node into DataParallel.
    if not is_distributed():
        return module
    if device is None:
        device = next(module.parameters()).device
    device = torch.device(device)
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index if device.index is not None else torch.cuda.current_device()])
    return nn.parallel.DistributedDataParallel(module, **kwargs)


def unwrap_model(module: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (else ``module``)."""
    # Neither ignite nor MONAI (whose get_state_dict unwraps for the state only) returns the network.
    while isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = module.module
    return module


def rank_seed(seed: int) -> int:
    """A seed for this rank's own random stream (augmentation, dropout) derived from ``seed``.

    ``seed`` itself when not distributed, so single-process runs draw what they always
    drew; ``derive_seed(seed, "rank", r)`` on rank ``r`` of a distributed run, so ranks
    do not repeat each other's draws on their different batches.
    """
    # The toolkit's seeds are derived by name (derive_seed), which no library does.
    return derive_seed(seed, "rank", rank()) if is_distributed() else int(seed)


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (all wait for all at the end).

    For a step whose first run writes a cache the others then read (e.g. decoded
    volumes): rank 0 writes, the others find it. Inside the block, write only when
    :func:`is_main_process`. When rank 0 fails in the block the others stay at the
    barrier until torchrun stops them, so they never work from a half-made state.
    """
    with idist.one_rank_first():
        yield
    # idist.one_rank_first lets rank 0 go on while the others still read in the block; rank 0
    # waits here so that it writes nothing new (the next step's files) under their feet.
    barrier()
