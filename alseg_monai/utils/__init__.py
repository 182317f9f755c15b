"""Shared utilities: atomic file writes, seeding, data-parallel (torch.distributed) helpers
and the command line's error hook."""

from __future__ import annotations

from .checkpoint import AtomicDiskSaver
from .distributed import (
    all_reduce_sum,
    barrier,
    broadcast_module,
    broadcast_object,
    ddp_wrap,
    destroy_distributed,
    gather_rows,
    init_distributed,
    is_distributed,
    is_main_process,
    local_device,
    local_rank,
    main_process_first,
    main_process_only,
    rank,
    rank_seed,
    shard_indices,
    unwrap_model,
    world_size,
)
from .error_hook import TRACEBACK_ENV, ErrorHook, install_error_hook
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
    "TRACEBACK_ENV",
    "AtomicDiskSaver",
    "ErrorHook",
    "all_reduce_sum",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "barrier",
    "broadcast_module",
    "broadcast_object",
    "clean_stale_temp_files",
    "ddp_wrap",
    "derive_seed",
    "destroy_distributed",
    "gather_rows",
    "init_distributed",
    "install_error_hook",
    "is_distributed",
    "is_main_process",
    "local_device",
    "local_rank",
    "main_process_first",
    "main_process_only",
    "rank",
    "rank_seed",
    "read_json",
    "save_npy_atomic",
    "set_determinism",
    "shard_indices",
    "torch_save_atomic",
    "unwrap_model",
    "world_size",
]
