"""Data-parallel runs with ``torch.distributed`` (one process per GPU, started by ``torchrun``).

Every function here is a no-op or an identity when no process group is initialised, so
single-process code calls them unconditionally: ``rank()`` is 0, ``world_size()`` 1,
``barrier()`` returns at once, ``gather_rows`` returns its input, and
``main_process_only`` functions simply run.

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
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, DataError
from .seed import derive_seed

__all__ = [
    "all_reduce_sum",
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
    "local_rank",
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

_F = TypeVar("_F", bound=Callable[..., Any])


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that writes files (always True when not distributed)."""
    return rank() == 0


def local_rank() -> int:
    """The rank within this node, from ``LOCAL_RANK`` (set by torchrun; 0 otherwise).

    Raises:
        ConfigError: ``LOCAL_RANK`` is not a non-negative integer.
    """
    value = os.environ.get("LOCAL_RANK", "0")
    if not value.isdigit():
        raise ConfigError(f"LOCAL_RANK={value!r}: expected a non-negative integer (set by torchrun)")
    return int(value)


def local_device() -> torch.device:
    """``cuda:<LOCAL_RANK>`` when torch sees a GPU, else ``cpu``: the device of this process.

    Raises:
        ConfigError: ``LOCAL_RANK`` names a GPU this node does not have.
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = local_rank()
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK={index} but this node has {torch.cuda.device_count()} visible GPU(s); "
            "start at most that many processes per node (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", index)


def init_distributed(
    backend: str | None = None, timeout_minutes: float = 60.0, log_all_ranks: bool = False
) -> torch.device:
    """Join the process group of a ``torchrun`` launch and return this process's device.

    Idempotent: a second call returns the device. Outside torchrun (the launcher's
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` unset) nothing is
    initialised and the single process's device is returned, so a multi-GPU config also
    runs as one process.

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
    _sync_ignite()
    logger.info("rank %d of %d joined the %s process group on %s", rank(), world_size(), backend, device)
    if not log_all_ranks and rank() > 0:
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    return device


def destroy_distributed() -> None:
    """Leave and destroy the process group (no-op when there is none)."""
    if is_distributed():
        dist.destroy_process_group()
        _sync_ignite()


def _sync_ignite() -> None:
    # ignite's metrics (e.g. Average) reduce across ranks through ignite.distributed, which
    # must be told that a native process group now exists (or no longer does).
    import ignite.distributed as idist

    idist.sync()


def barrier() -> None:
    """Wait until every rank reaches this point (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    # nccl only moves CUDA tensors; gloo and mpi move CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object), returned on every rank; ``obj`` itself
    when not distributed. Every rank must call it; only ``src``'s argument matters."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _all_gather_objects(obj: Any) -> list[Any]:
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(value: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The element-wise sum of ``value`` over all ranks, as a new tensor or array of the same
    type, device and dtype (a copy of ``value`` when not distributed)."""
    if isinstance(value, np.ndarray):
        return np.asarray(all_reduce_sum(torch.from_numpy(np.ascontiguousarray(value)))).copy()
    if not is_distributed():
        return value.clone()
    total = value.detach().to(_comm_device(), copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(value.device)


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
    num_shards = world_size() if num_shards is None else int(num_shards)
    shard = rank() if shard is None else int(shard)
    if int(n) < 0 or num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(
            f"shard_indices: need n >= 0 and 0 <= shard < num_shards, got n={n}, shard={shard}, num_shards={num_shards}"
        )
    base, extra = divmod(int(n), num_shards)
    start = shard * base + min(shard, extra)
    return np.arange(start, start + base + (shard < extra), dtype=np.int64)


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
    parts = _all_gather_objects((indices, local)) if is_distributed() else [(indices, local)]
    everything = np.concatenate([part[0] for part in parts])
    _check_cover(everything, n)
    out: list[Any] = [None] * n
    for part_indices, part in parts:
        for index, item in zip(part_indices.tolist(), part):
            out[index] = item
    return out


def _gather_arrays(local: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    metas = _all_gather_objects((len(indices), local.shape[1:], local.dtype.str))
    shaped = [(shape, dtype) for count, shape, dtype in metas if count]
    if len({meta for meta in shaped}) > 1:
        raise DataError(f"gather_rows: ranks sent rows of different trailing shapes or dtypes: {shaped}")
    trailing, dtype = shaped[0] if shaped else (local.shape[1:], local.dtype.str)
    dtype = np.dtype(dtype)
    counts = [count for count, _, _ in metas]
    width = max(counts)
    device = _comm_device()
    # Collectives need equal sizes: every rank sends `width` rows, padding its own.
    padded = np.zeros((width, *trailing), dtype=dtype)
    padded[: len(local)] = local.reshape(len(local), *trailing)
    # bool is not a collective dtype everywhere; its bytes travel as uint8.
    wire = padded.view(np.uint8) if dtype == np.bool_ else padded
    rows = torch.from_numpy(wire).to(device)
    row_parts = [torch.empty_like(rows) for _ in counts]
    dist.all_gather(row_parts, rows)
    sent = torch.full((width,), -1, dtype=torch.int64)
    sent[: len(indices)] = torch.from_numpy(indices)
    index_parts = [torch.empty_like(sent, device=device) for _ in counts]
    dist.all_gather(index_parts, sent.to(device))
    gathered = [part[:count].cpu().numpy() for part, count in zip(index_parts, counts)]
    _check_cover(np.concatenate(gathered), n)
    out = np.empty((n, *trailing), dtype=dtype)
    for part_indices, part, count in zip(gathered, row_parts, counts):
        values = part[:count].cpu().numpy()
        out[part_indices] = values.view(np.bool_) if dtype == np.bool_ else values
    return out


def broadcast_module(module: nn.Module, src: int = 0) -> nn.Module:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank, in place.

    Data-parallel training keeps parameters equal on all ranks, but each rank's BatchNorm
    running statistics follow its own batches; after this every rank holds exactly
    ``src``'s model (the one rank 0 saves). Returns ``module``.
    """
    if not is_distributed():
        return module
    device = _comm_device()
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if not isinstance(tensor, torch.Tensor):
                continue
            # Collectives need dense tensors on the backend's device (channels-last weights are copied).
            wire = tensor.to(device).contiguous()
            dist.broadcast(wire, src=src)
            if wire.data_ptr() != tensor.data_ptr():
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
    while isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = module.module
    return module


def rank_seed(seed: int) -> int:
    """A seed for this rank's own random stream (augmentation, dropout) derived from ``seed``.

    ``seed`` itself when not distributed, so single-process runs draw what they always
    drew; ``derive_seed(seed, "rank", r)`` on rank ``r`` of a distributed run, so ranks
    do not repeat each other's draws on their different batches.
    """
    return derive_seed(seed, "rank", rank()) if is_distributed() else int(seed)


def main_process_only(function: _F) -> _F:
    """Decorator: run ``function`` on rank 0 only; other ranks skip it and get None.

    For functions that write files. No barrier: call :func:`barrier` before another rank
    reads what was written.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if is_main_process():
            return function(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (all wait for all at the end).

    For a step whose first run writes a cache the others then read (e.g. decoded
    volumes): rank 0 writes, the others find it. Inside the block, write only when
    :func:`is_main_process`. When rank 0 fails in the block the others stay at the
    barrier until torchrun stops them, so they never work from a half-made state.
    """
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()
    barrier()
