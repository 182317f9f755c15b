"""K-Center Greedy (Sener and Savarese, "Active Learning for Convolutional Neural Networks:
A Core-Set Approach", ICLR 2018), the selection rule of the paper's method (Sec. 3.2.2):
repeatedly add the pool point farthest from its nearest centre.

Exact and fast:

- Initial distances to the labelled set come from an exact faiss ``IndexFlatL2`` search
  (chunked; on CUDA a faiss ``GpuIndexFlatL2`` when faiss-gpu is installed, else the
  same brute-force search in torch), then are recomputed in float64 for the few
  candidate centres whose float32 distance could be the minimum, so the values equal
  the textbook's whichever search ran.
- Each pick first bounds every point's distance to the new centre from below with a
  projection on the features' top principal axes (an orthogonal projection never
  lengthens a distance), a pass over 8-32 columns instead of D. Only points the bound
  cannot rule out get a float32 distance, and only those within its proven rounding
  bound of an improvement are re-measured in float64. Worst case (structureless data):
  one pass over the features per pick.
- Memory beyond the features is O(N) plus bounded chunks: never an N x N or N x |L|
  matrix. The estimate is checked before allocating (:class:`ResourceError`).
- Single-threaded (every BLAS and OpenMP pool of the process and torch's, restored
  afterwards): the per-pick loop is many small operations, and the one-off work before
  it includes some (the principal axes' ``eigh`` is thousands of small BLAS calls);
  split over threads, each stalls whenever another process holds a core.

The picks equal those of the textbook implementation (minimum distances as the float32
values of ``sklearn.metrics.pairwise_distances(features, features[[new]])``, ``argmax``
taking the first maximum) except on exact ties of those float32 values.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..utils import derive_seed
from ..utils.progress import bar_disable
from ..utils.threads import thread_limit
from .resources import ensure_memory, resolve_device

__all__ = ["kcenter_greedy", "kcenter_memory_bytes"]

logger = logging.getLogger(__name__)

_UNIT_ROUNDOFF_F32 = 2.0**-24
# Working chunks (gathered rows, float64 differences) stay under this size.
_CHUNK_BYTES = 64 * 2**20
# Centres returned per point by the initial search; points whose k-th is within rounding
# error of the first are searched exactly against all centres.
_SEARCH_K = 4
# Above this fraction of points to measure, one contiguous pass beats gathering rows.
_DENSE_FRACTION = 0.25
# Principal axes kept for the pruning projection, and rows sampled to find them.
_PROJECTION_DIM = 32
_PROJECTION_SAMPLE = 8192
# Bytes per pool point: float64 squared minima and norms, float32 minima, reach, projected
# norms and projection, and per-pick temporaries (float32 bound, float64 products, mask, indices).
_BYTES_PER_POINT = 8 * 2 + 4 * 3 + 4 * _PROJECTION_DIM + (4 + 8 + 8 + 1 + 8)
# Squared norms above this would overflow the float32 pruning bound.
_MAX_SQUARED_NORM = 1e30
# Threads of a run and of its per-pick loop (None: thread pools left as they are, as before issue 14).
# Single-threaded: on 2 cores beside a 2-worker experiment, 20k x 512, 1k picks took 4.2 s, not 38.5 s.
_THREADS: int | None = 1
_PICK_THREADS: int | None = 1


def kcenter_memory_bytes(
    num_points: int, dim: int, num_labelled: int, budget: int, copies_features: bool = False
) -> int:
    """Bytes :func:`kcenter_greedy` allocates beyond the features it is given.

    The O(N) state and per-pick temporaries (``_BYTES_PER_POINT`` per point, the
    projection included), two copies of the labelled rows (the centres and the faiss
    index), bounded working chunks, the picks, and a float32 copy of the features when
    the input is not float32 C-contiguous on the device.
    """
    total = num_points * _BYTES_PER_POINT
    total += 2 * num_labelled * dim * 4 + budget * 8
    total += 4 * _CHUNK_BYTES
    if copies_features:
        total += num_points * dim * 4
    return int(total)


def _dot_error_factor(dim: int) -> float:
    # Higham (2002), Sec. 3.1: |fl(a.b) - a.b| <= gamma_D sum|a_i b_i| <= gamma_D (|a|^2 + |b|^2) / 2
    # in any summation order, so |a|^2 + |b|^2 - 2 fl(a.b) errs by at most gamma_D (|a|^2 + |b|^2).
    # The factor 1.25 covers the float64 rounding of the norms and the sums.
    gamma = dim * _UNIT_ROUNDOFF_F32 / (1.0 - dim * _UNIT_ROUNDOFF_F32)
    return 1.25 * gamma


def _search_error_factor(dim: int) -> float:
    # faiss also computes the norms and the final sum in float32: twice the dot bound plus
    # a few roundings of the sum.
    return 2.0 * _dot_error_factor(dim) + 8.0 * _UNIT_ROUNDOFF_F32


def _rows_per_chunk(row_bytes: int) -> int:
    return max(1, _CHUNK_BYTES // max(1, row_bytes))


def _chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


class _NumpyOps:
    """Array operations of the CPU path (numpy: several times faster than torch for the
    small per-pick operations, and its einsum streams at memory speed)."""

    float32, float64, int64 = np.float32, np.float64, np.int64

    def full(self, shape: int | tuple[int, ...], value: float, dtype: Any) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def arange(self, start: int, stop: int) -> np.ndarray:
        return np.arange(start, stop, dtype=np.int64)

    def cast(self, a: np.ndarray, dtype: Any) -> np.ndarray:
        return a.astype(dtype, copy=False)

    def nonzero(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    def take(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.take(x, rows, axis=0)

    def matvec(self, x: np.ndarray, vector: np.ndarray) -> np.ndarray:
        # Measured on AVX-512: BLAS sgemv wins on thin matrices, einsum's loop on wide ones
        # (2-4x faster than BLAS on 100,000 x 512 and 1,000,000 x 128).
        return x @ vector if x.shape[1] <= 32 else np.einsum("ij,j->i", x, vector)

    def matmul64(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a.astype(np.float64) @ b

    def sqrt(self, a: np.ndarray) -> np.ndarray:
        return np.sqrt(a)

    def minimum(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.minimum(a, b)

    def argmax(self, a: np.ndarray) -> int:
        return int(np.argmax(a))

    def row_min(self, a: np.ndarray) -> np.ndarray:
        return a.min(1)

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)

    def eigh_vectors(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.eigh(a)[1]

    def orthonormalise(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.qr(a)[0]

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def from_numpy(self, a: np.ndarray) -> np.ndarray:
        return a


class _TorchOps:
    """The same operations on a CUDA device (also runnable on CPU, which the tests use)."""

    float32, float64, int64 = torch.float32, torch.float64, torch.int64

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def full(self, shape: int | tuple[int, ...], value: float, dtype: Any) -> torch.Tensor:
        return torch.full(shape if isinstance(shape, tuple) else (shape,), value, dtype=dtype, device=self.device)

    def arange(self, start: int, stop: int) -> torch.Tensor:
        return torch.arange(start, stop, device=self.device)

    def cast(self, a: torch.Tensor, dtype: Any) -> torch.Tensor:
        return a.to(dtype)

    def nonzero(self, mask: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(mask).flatten()

    def take(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, rows)

    def matvec(self, x: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        return torch.mv(x, vector)

    def matmul64(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.double() @ b

    def sqrt(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(a)

    def minimum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b)

    def argmax(self, a: torch.Tensor) -> int:
        return int(torch.argmax(a))

    def row_min(self, a: torch.Tensor) -> torch.Tensor:
        return a.min(1).values

    def concat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts)

    def eigh_vectors(self, a: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigh(a)[1]

    def orthonormalise(self, a: torch.Tensor) -> torch.Tensor:
        return torch.linalg.qr(a)[0]

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.cpu().numpy()

    def from_numpy(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device)


@contextlib.contextmanager
def _ieee_float32_matmul() -> Iterator[None]:
    # TF32 (CUDA) or bf16 (oneDNN) matmuls would void the float32 rounding bounds that
    # decide which distances are re-measured exactly.
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _check_features(features: np.ndarray | torch.Tensor) -> tuple[int, int]:
    shape = tuple(features.shape)
    if len(shape) != 2:
        raise ConfigError(f"kcenter_greedy: features must be a 2-D (N, D) array, got shape {shape}")
    if shape[1] < 1:
        raise ConfigError(f"kcenter_greedy: features must have at least one column, got shape {shape}")
    return shape[0], shape[1]


def _check_labelled(labelled: Sequence[int] | np.ndarray | torch.Tensor, num_points: int) -> np.ndarray:
    if isinstance(labelled, torch.Tensor):
        labelled = labelled.detach().cpu().numpy()
    array = np.asarray(labelled)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(
            f"kcenter_greedy: labelled must be a 1-D sequence of integer row indices, "
            f"got shape {array.shape} and dtype {array.dtype}"
        )
    array = array.astype(np.int64)
    bad = array[(array < 0) | (array >= num_points)]
    if bad.size:
        raise ConfigError(
            f"kcenter_greedy: labelled indices must lie in [0, {num_points}) (the rows of features), "
            f"got {bad[:5].tolist()}"
        )
    unique, counts = np.unique(array, return_counts=True)
    if unique.size != array.size:
        repeated = unique[counts > 1][:5].tolist()
        raise ConfigError(f"kcenter_greedy: labelled indices must be distinct, repeated: {repeated}")
    return array


def _check_budget(budget: int, num_points: int, num_labelled: int) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ConfigError(f"kcenter_greedy: budget must be an integer, got {budget!r}")
    budget = int(budget)
    free = num_points - num_labelled
    if budget < 0 or budget > free:
        raise ConfigError(
            f"kcenter_greedy: budget must be between 0 and the {free} unlabelled points "
            f"({num_points} rows, {num_labelled} labelled), got {budget}"
        )
    return budget


def _needs_copy(features: np.ndarray | torch.Tensor, device: torch.device) -> bool:
    if isinstance(features, torch.Tensor):
        same_place = features.device == device or (features.device.type == device.type == "cpu")
        return features.dtype != torch.float32 or not same_place or not features.is_contiguous()
    return features.dtype != np.float32 or not features.flags.c_contiguous or device.type != "cpu"


def _prepare(features: np.ndarray | torch.Tensor, device: torch.device) -> tuple[Any, _NumpyOps | _TorchOps]:
    """float32 C-contiguous features on ``device`` (a copy only when needed) and their ops."""
    if device.type == "cpu":
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        return np.ascontiguousarray(features, dtype=np.float32), _NumpyOps()
    if not isinstance(features, torch.Tensor):
        with warnings.catch_warnings():
            # A read-only memmap is fine: the features are never written.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return features.detach().to(device=device, dtype=torch.float32).contiguous(), _TorchOps(device)


def _squared_norms(x: Any, ops: _NumpyOps | _TorchOps) -> Any:
    """(N, D) float32 -> (N,) float64 squared norms, chunked; DataError on non-finite rows."""
    norms = ops.full(x.shape[0], 0.0, ops.float64)
    for rows in _chunks(x.shape[0], _rows_per_chunk(x.shape[1] * 8)):
        block = ops.cast(x[rows], ops.float64)
        norms[rows] = (block * block).sum(1)
    finite = ops.to_numpy(norms)
    if not np.isfinite(finite).all():
        bad = np.flatnonzero(~np.isfinite(finite))[:5].tolist()
        raise DataError(f"kcenter_greedy: features contain NaN or infinite values (rows {bad})")
    return norms


def _exact_squared(x: Any, rows: Any, centre64: Any, ops: _NumpyOps | _TorchOps) -> Any:
    """Float64 squared distances from the rows ``rows`` of ``x`` to ``centre64`` (D,), chunked."""
    out = ops.full(len(rows), 0.0, ops.float64)
    for part in _chunks(len(rows), _rows_per_chunk(x.shape[1] * 12)):
        diff = ops.cast(ops.take(x, rows[part]), ops.float64) - centre64
        out[part] = (diff * diff).sum(1)
    return out


def _principal_projection(x: Any, ops: _NumpyOps | _TorchOps) -> Any:
    """(N, D) -> (N, m) float32 coordinates on the top-m principal axes (orthonormal, float64).

    m = min(D, 32, max(8, D // 8)): a pass over the projections costs a small fraction of
    a pass over the features. Only speed depends on the axes, never the picks, so a
    strided sample of rows (at most 8192, and at most one working chunk for very wide
    rows such as raw pixels) is enough to find them.
    """
    n, d = x.shape
    m = min(d, _PROJECTION_DIM, max(8, d // 8))
    sample_rows = min(n, _PROJECTION_SAMPLE, max(m, _rows_per_chunk(d * 8)))
    sample = ops.cast(x[:: max(1, n // sample_rows)][:sample_rows], ops.float64)
    sample = sample - sample.mean(0)
    if d <= len(sample):
        axes = ops.eigh_vectors(sample.T @ sample)[:, -m:]
    else:
        # Wide rows: eigenvectors of the small Gram matrix give the same axes; QR makes
        # them orthonormal to float64 precision, which the lower bound relies on.
        axes = ops.orthonormalise(sample.T @ ops.eigh_vectors(sample @ sample.T)[:, -m:])
    proj = ops.full((n, axes.shape[1]), 0.0, ops.float32)
    for rows in _chunks(n, _rows_per_chunk(d * 8)):
        proj[rows] = ops.cast(ops.matmul64(x[rows], axes), ops.float32)
    return proj


class _State:
    """O(N) state of a K-Center Greedy run.

    ``best_sq`` holds each point's exact (float64) squared distance to its nearest centre
    and ``mind`` the float32 distance the textbook would hold. ``proj`` is a float32
    projection of the features on their top principal axes: distances between
    projections bound the true ones from below and are cheap to compute for every point
    at every pick; ``reach_sq`` is the squared projected distance below which a point
    must be measured in full.
    """

    def __init__(self, x: Any, ops: _NumpyOps | _TorchOps) -> None:
        n = x.shape[0]
        self.x, self.ops = x, ops
        self.norms = _squared_norms(x, ops)
        if float(self.norms.max()) > _MAX_SQUARED_NORM:
            raise DataError(
                f"kcenter_greedy: features with squared norms above {_MAX_SQUARED_NORM:g} are not supported "
                f"(got {float(self.norms.max()):g}); rescale them"
            )
        self.best_sq = ops.full(n, float("inf"), ops.float64)
        self.mind = ops.full(n, float("inf"), ops.float32)
        self.reach_sq = ops.full(n, float("inf"), ops.float32)
        self.dot_factor = _dot_error_factor(x.shape[1])
        self.proj = _principal_projection(x, ops)
        # |proj_p|^2 less the rounding bound of the float32 projected dot product and of the
        # three float32 operations of may_improve, so that low_p + low_c - 2 fl(proj_p . proj_c)
        # evaluated in float32 stays <= |proj_p - proj_c|^2.
        shrink = 1.0 - _dot_error_factor(self.proj.shape[1]) - 16 * _UNIT_ROUNDOFF_F32
        self.proj_low = ops.cast(_squared_norms(self.proj, ops) * shrink, ops.float32)
        # Rounding the projections to float32 moves each by at most u |x|; the bound keeps
        # that much slack for both ends (float64 projection errors are far smaller).
        self.slack = 2.02 * _UNIT_ROUNDOFF_F32 * float(np.sqrt(float(self.norms.max())))

    def set_minimum(self, rows: Any, squared: Any) -> None:
        self.best_sq[rows] = squared
        # sklearn rounds the float64 squared distance to float32, then takes a float32 sqrt.
        self.mind[rows] = self.ops.sqrt(self.ops.cast(squared, self.ops.float32))
        # Rounded up into float32, so the float32 comparison of may_improve stays conservative.
        reach = (self.ops.sqrt(squared) + self.slack) ** 2 * (1.0 + 4 * _UNIT_ROUNDOFF_F32)
        self.reach_sq[rows] = self.ops.cast(reach, self.ops.float32)

    def may_improve(self, row: int) -> Any:
        """Indices of the points whose projected distance to ``row`` does not rule out a new minimum."""
        low_sq = self.ops.matvec(self.proj, self.proj[row])
        low_sq *= -2.0
        low_sq += self.proj_low
        low_sq += self.proj_low[row]
        # d(p, c) >= |proj_p - proj_c| - slack >= d(p, nearest centre) rules p out.
        return self.ops.nonzero(low_sq < self.reach_sq)


def _faiss_search(centres: np.ndarray, k: int):
    import faiss

    index = faiss.IndexFlatL2(centres.shape[1])
    index.add(np.ascontiguousarray(centres))

    def search(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distances, ids = index.search(np.ascontiguousarray(block), k)
        return distances.astype(np.float64), ids

    return search


def _faiss_gpus() -> int:
    """GPUs faiss can use (0 for a CPU-only faiss build)."""
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _gpu_flat_index(centres: torch.Tensor, device: torch.device) -> tuple[Any, Any]:
    """``(index, resources)``: a faiss ``GpuIndexFlatL2`` of ``centres`` on ``device``'s GPU
    and the GPU resources it runs on (faiss-gpu only).

    Its GEMM runs in IEEE float32 (faiss disallows reduced-precision cuBLAS math, and the
    index stores float32, not float16), so the rounding bounds of the CPU search hold.
    """
    import faiss

    resources = faiss.StandardGpuResources()
    # Temporary memory within the working chunks counted by kcenter_memory_bytes.
    resources.setTempMemory(2 * _CHUNK_BYTES)
    config = faiss.GpuIndexFlatConfig()
    config.device = device.index if device.index is not None else torch.cuda.current_device()
    index = faiss.GpuIndexFlatL2(resources, centres.shape[1], config)
    index.add(np.ascontiguousarray(centres.cpu().numpy(), dtype=np.float32))
    return index, resources


def _faiss_torch_search(index: Any, k: int, device: torch.device):
    """:func:`_faiss_search` over a built faiss ``index``, for torch blocks on ``device``."""

    def search(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances, ids = index.search(np.ascontiguousarray(block.cpu().numpy(), dtype=np.float32), k)
        return torch.from_numpy(distances.astype(np.float64)).to(device), torch.from_numpy(ids).to(device)

    return search


def _search_function(ops: _NumpyOps | _TorchOps, centres: Any, centre_norms: Any, k: int):
    """The k-nearest-centre search of the initial minima: faiss on CPU, faiss-gpu on CUDA
    when installed, else the torch brute force."""
    if isinstance(ops, _NumpyOps):
        return _faiss_search(centres, k)
    if ops.device.type == "cuda" and _faiss_gpus() > 0:
        index, resources = _gpu_flat_index(centres, ops.device)
        search = _faiss_torch_search(index, k, ops.device)
        search.gpu_resources = resources  # the index must not outlive its GPU resources
        return search
    return _torch_search(centres, centre_norms, k)


def _torch_search(centres: torch.Tensor, centre_norms: torch.Tensor, k: int):
    # The brute-force search of IndexFlatL2, in torch, for CUDA tensors (and no faiss GPU build).
    def search(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        block_norms = (block.double() ** 2).sum(1, keepdim=True)
        best = torch.full((block.shape[0], k), float("inf"), dtype=torch.float64, device=block.device)
        best_ids = torch.zeros((block.shape[0], k), dtype=torch.int64, device=block.device)
        for cols in _chunks(centres.shape[0], _rows_per_chunk(block.shape[0] * 8)):
            squared = block_norms + centre_norms[cols] - 2.0 * (block @ centres[cols].T).double()
            col_ids = torch.arange(cols.start, cols.stop, device=block.device).expand_as(squared)
            merged, merged_ids = torch.cat([best, squared], 1), torch.cat([best_ids, col_ids], 1)
            best, order = torch.topk(merged, k, dim=1, largest=False, sorted=True)
            best_ids = torch.gather(merged_ids, 1, order)
        return best, best_ids

    return search


def _nearest_exact(points: Any, centres: Any, ops: _NumpyOps | _TorchOps) -> Any:
    """(n,) float64 squared distance of each point to its nearest centre (rare fallback), chunked."""
    best = ops.full(points.shape[0], float("inf"), ops.float64)
    p64 = ops.cast(points, ops.float64)
    for cols in _chunks(centres.shape[0], _rows_per_chunk(points.shape[0] * points.shape[1] * 8)):
        diff = p64[:, None, :] - ops.cast(centres[cols], ops.float64)[None]
        best = ops.minimum(best, ops.row_min((diff * diff).sum(2)))
    return best


def _initial_minima(state: _State, labelled: np.ndarray) -> None:
    """Exact minimum distance of every point to the labelled rows (the initial centres)."""
    x, ops, norms = state.x, state.ops, state.norms
    # Identical labelled rows are one centre; without this, many duplicates would make
    # every search result ambiguous.
    _, first = np.unique(ops.to_numpy(x[ops.from_numpy(labelled)]), axis=0, return_index=True)
    unique_rows = ops.from_numpy(labelled[np.sort(first)])
    centres, centre_norms = ops.take(x, unique_rows), norms[unique_rows]
    k = min(_SEARCH_K, centres.shape[0])
    search = _search_function(ops, centres, centre_norms, k)
    factor = _search_error_factor(x.shape[1])
    max_centre_norm = float(centre_norms.max())
    for rows in _chunks(x.shape[0], _rows_per_chunk(x.shape[1] * 8)):
        block = x[rows]
        approx, ids = search(block)
        block_norms = norms[rows]
        bound = factor * (block_norms[:, None] + centre_norms[ids])
        upper = ops.row_min(approx + bound)
        maybe = approx - bound <= upper[:, None]
        best = ops.full(block.shape[0], float("inf"), ops.float64)
        for j in range(k):
            hit = ops.nonzero(maybe[:, j])
            diff = ops.cast(ops.take(block, hit), ops.float64) - ops.cast(ops.take(centres, ids[hit, j]), ops.float64)
            best[hit] = ops.minimum(best[hit], (diff * diff).sum(1))
        if k < centres.shape[0]:
            # A centre beyond the k returned could still be the nearest only if the k-th
            # float32 distance is within rounding error of the best: search those exactly.
            unsure = ops.nonzero(approx[:, -1] - factor * (block_norms + max_centre_norm) < upper)
            if len(unsure):
                best[unsure] = ops.minimum(best[unsure], _nearest_exact(ops.take(block, unsure), centres, ops))
        state.set_minimum(ops.arange(rows.start, rows.stop), best)


def _add_pick(state: _State, row: int) -> None:
    """Make ``row`` a centre and lower every minimum it improves (exactly)."""
    x, ops, norms = state.x, state.ops, state.norms
    centre, centre_norm = x[row], float(norms[row])
    state.best_sq[row] = 0.0
    state.reach_sq[row] = 0.0
    state.mind[row] = float("-inf")  # never picked again, even when all that is left are duplicates
    measure = state.may_improve(row)
    if len(measure) > _DENSE_FRACTION * x.shape[0]:
        dots = ops.matvec(x, centre)[measure]
    else:
        parts = _chunks(len(measure), _rows_per_chunk(x.shape[1] * 4))
        dots = ops.concat([ops.matvec(ops.take(x, measure[part]), centre) for part in parts])
    measured_norms = norms[measure]
    approx = measured_norms + centre_norm - 2.0 * ops.cast(dots, ops.float64)
    bound = state.dot_factor * (measured_norms + centre_norm)
    candidates = measure[ops.nonzero(approx - bound < state.best_sq[measure])]
    exact = _exact_squared(x, candidates, ops.cast(centre, ops.float64), ops)
    better = ops.nonzero(exact < state.best_sq[candidates])
    state.set_minimum(candidates[better], exact[better])


def kcenter_greedy(
    features: np.ndarray | torch.Tensor,
    labelled: Sequence[int] | np.ndarray | torch.Tensor,
    budget: int,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    memory_limit: int | None = None,
) -> np.ndarray:
    """Pick ``budget`` rows of ``features`` by K-Center Greedy (Sener and Savarese, 2018).

    Each pick is the unlabelled row farthest (Euclidean) from its nearest centre; the
    centres are the labelled rows and the earlier picks. This is the 2-approximation of
    the k-center problem the paper uses on its contrastive embeddings (Sec. 3.2.2).

    Args:
        features: (N, D) array or tensor, one row per pool point (converted to float32).
        labelled: row indices of the labelled points (distinct, in [0, N); may be empty).
        budget: number of rows to pick, 0 <= budget <= N - len(labelled).
        seed: with no labelled row, the first centre is a random row drawn from this seed.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when torch sees a GPU.
        progress: show a progress bar over the picks.
        memory_limit: bytes the run may allocate, instead of the measured free memory.

    Returns:
        (budget,) int64 array of distinct unlabelled row indices, in pick order.

    Raises:
        ConfigError: features not 2-D; labelled not distinct integer rows in range; budget
            negative or above the number of unlabelled rows; bad device.
        DataError: features contain NaN or infinity.
        ResourceError: the working memory (see :func:`kcenter_memory_bytes`) exceeds
            ``memory_limit`` or the free memory, checked before allocating.
    """
    num_points, dim = _check_features(features)
    labelled_rows = _check_labelled(labelled, num_points)
    budget = _check_budget(budget, num_points, labelled_rows.size)
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    run_device = resolve_device(device)
    ensure_memory(
        kcenter_memory_bytes(num_points, dim, labelled_rows.size, budget, _needs_copy(features, run_device)),
        f"kcenter_greedy on {num_points} x {dim} features ({labelled_rows.size} labelled, budget {budget})",
        run_device,
        memory_limit,
    )
    logger.info(
        "kcenter_greedy: %d x %d features, %d labelled, %d picks on %s",
        num_points,
        dim,
        labelled_rows.size,
        budget,
        run_device,
    )
    with _ieee_float32_matmul(), torch.no_grad(), thread_limit(_THREADS):
        x, ops = _prepare(features, run_device)
        return _run(_State(x, ops), labelled_rows, budget, seed, progress)


def _run(state: _State, labelled: np.ndarray, budget: int, seed: int, progress: bool) -> np.ndarray:
    picks = np.empty(budget, dtype=np.int64)
    start = 0
    if labelled.size:
        _initial_minima(state, labelled)
        state.mind[state.ops.from_numpy(labelled)] = float("-inf")
    with thread_limit(_PICK_THREADS):
        if not labelled.size:
            rng = np.random.default_rng(derive_seed(seed, "kcenter_greedy", "first_centre"))
            picks[0] = int(rng.integers(state.x.shape[0]))
            _add_pick(state, int(picks[0]))
            start = 1
        bar = tqdm(range(start, budget), desc="kcenter_greedy", disable=bar_disable(progress), initial=start,
                   total=budget)
        for step in bar:
            picks[step] = state.ops.argmax(state.mind)
            if step + 1 < budget:
                _add_pick(state, int(picks[step]))
    return picks
