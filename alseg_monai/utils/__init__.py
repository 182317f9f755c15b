"""Shared utilities: atomic file writes, seeding, thread limits, data-parallel (torch.distributed)
helpers and the command line's error hook."""

from __future__ import annotations

from .distributed import (
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
    main_process_first,
    main_process_only,
    rank,
    rank_seed,
    shard_indices,
    unwrap_model,
    world_size,
)
from .error_hook import install_error_hook
from .io import (
    atomic_write_json,
    atomic_write_text,
    clean_stale_temp_files,
    read_json,
    save_npy_atomic,
    torch_save_atomic,
)
from .seed import derive_seed
from .threads import check_threads, thread_limit

__all__ = [
    "atomic_write_json",
    "atomic_write_text",
    "barrier",
    "broadcast_module",
    "broadcast_object",
    "check_threads",
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
    "main_process_first",
    "main_process_only",
    "rank",
    "rank_seed",
    "read_json",
    "save_npy_atomic",
    "shard_indices",
    "thread_limit",
    "torch_save_atomic",
    "unwrap_model",
    "world_size",
]
