"""Devices and memory: where a selection step runs, and whether it fits there.

A K-Center Greedy run on a million slices, or a k-means on their embeddings, must fail
fast with a message saying how much it needs, not be killed by the operating system
half-way through a round. Callers estimate their needs in bytes and call
:func:`ensure_memory` before allocating.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ConfigError, ResourceError

__all__ = []

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when torch sees a GPU, else CPU; otherwise ``torch.device(device)``.

    Raises:
        ConfigError: an unparsable device, or CUDA asked for where torch sees none.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} requested but torch sees no CUDA GPU")
    return resolved


def format_bytes(num_bytes: float) -> str:
    """``1536 -> '1.5 KiB'``: a size for error messages."""
    value = float(num_bytes)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
    # Inside a container MemAvailable reports the host; the cgroup limit is the real one.
    for limit_file, usage_file in (
        (_CGROUP_V2 / "memory.max", _CGROUP_V2 / "memory.current"),
        (_CGROUP_V1 / "memory.limit_in_bytes", _CGROUP_V1 / "memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(limit - usage, 0)
    return None


def _host_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes(device: str | torch.device | None = None) -> int | None:
    """Bytes that can still be allocated on ``device`` (host RAM for ``None`` / CPU).

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (``sysconf`` elsewhere), capped by the
    cgroup limit when the process runs in a container. CUDA: free device memory.
    Returns ``None`` when the platform does not say.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    host, cgroup = _host_available(), _cgroup_headroom()
    known = [value for value in (host, cgroup) if value is not None]
    return min(known) if known else None


def ensure_memory(
    required_bytes: int,
    what: str,
    device: str | torch.device | None = None,
    memory_limit: int | None = None,
) -> None:
    """Raise :class:`ResourceError` when ``required_bytes`` exceed what ``device`` has free.

    Args:
        required_bytes: the caller's estimate of its extra allocations.
        what: the operation, named in the message (e.g. ``"kcenter_greedy on 1000000 x 512"``).
        device: where the memory is allocated.
        memory_limit: bytes to allow instead of the measured free memory (a user cap, or a
            test's); ``None`` measures.

    Raises:
        ConfigError: ``memory_limit`` is not a positive integer.
        ResourceError: the estimate exceeds the limit.
    """
    if memory_limit is not None:
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit <= 0:
            raise ConfigError(f"memory_limit: expected a positive number of bytes, got {memory_limit!r}")
        available = memory_limit
        source = "memory_limit"
    else:
        available = available_memory_bytes(device)
        source = f"free memory on {torch.device(device) if device is not None else 'cpu'}"
    if available is not None and required_bytes > available:
        raise ResourceError(
            f"{what}: needs about {format_bytes(required_bytes)} but only {format_bytes(available)} "
            f"is available ({source}); use fewer slices or lower-dimensional features, or free memory"
        )
