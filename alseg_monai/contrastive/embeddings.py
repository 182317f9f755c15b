"""Slice embeddings g(x) for Coreset selection, and their files on disk.

The embedding of a slice is the encoder's pooled backbone feature (512-d for
ResNet-18), not the projection (paper Sec. 3.2.1). On disk: ``embeddings.npy``
(float32, (N, F)) and ``embedding_ids.json`` (the N slice ids, row order), and, for
strategies that measure in the space the contrastive loss compares, ``projections.npy``
(float32, (N, P)): the projection head applied to those features.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.networks import eval_mode
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from ..utils import (
    atomic_write_json,
    gather_rows,
    main_process_only,
    read_json,
    save_npy_atomic,
    shard_indices,
)
from ..utils.progress import bar_disable
from ..utils.threads import check_threads, thread_limit
from .networks import SimCLREncoder
from .trainer import ENCODER_FILE

__all__ = [
    "embed",
    "load_embeddings",
    "project",
    "save_embeddings",
]

EMBEDDINGS_FILE = "embeddings.npy"
EMBEDDING_IDS_FILE = "embedding_ids.json"
PROJECTIONS_FILE = "projections.npy"


def _stack_images(items: Sequence[Mapping], key: str) -> torch.Tensor:
    return torch.stack([torch.as_tensor(item[key]).as_subclass(torch.Tensor).float() for item in items])


def embed(
    encoder: SimCLREncoder,
    dataset: Dataset,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    image_key: str = "image",
    threads: int | None = None,
) -> np.ndarray:
    """Embed every item of ``dataset`` with ``encoder.features``: (N, F) float32, row i = item i.

    Deterministic: eval mode (BatchNorm running statistics, so a row does not depend
    on its batch), no augmentation, items in order. The encoder is moved to ``device``;
    its train/eval mode is restored afterwards.

    Distributed (every rank holding the same encoder): each rank embeds a contiguous
    block of the items (:func:`~alseg_monai.utils.shard_indices`) and every rank returns
    the whole (N, F) array in item order (:func:`~alseg_monai.utils.gather_rows`).

    Args:
        encoder: a :class:`SimCLREncoder` (anything with ``features(x) -> (B, F)``).
        dataset: ``dataset[i][image_key]`` is a (C, H, W) image.
        batch_size: slices per forward pass.
        device: torch device.
        num_workers: loader worker processes.
        progress: show a progress bar.
        image_key: the image key of the dataset's items.
        threads: at most this many CPU threads for the forward passes (None: the
            process's); see :func:`~alseg_monai.utils.threads.thread_limit`.

    Raises:
        ConfigError: ``batch_size`` < 1, ``threads`` not None or a positive integer.
        DataError: the dataset is empty.
    """
    if batch_size < 1:
        raise ConfigError(f"embed: batch_size must be >= 1, got {batch_size}")
    check_threads("embed: threads", threads)
    if len(dataset) == 0:
        raise DataError("embed: the dataset is empty")
    device = torch.device(device)
    rows = shard_indices(len(dataset))
    shard = dataset if len(rows) == len(dataset) else Subset(dataset, rows.tolist())
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=functools.partial(_stack_images, key=image_key),
    )
    encoder.to(device)
    chunks = []
    with eval_mode(encoder), torch.inference_mode(), thread_limit(threads):
        for images in tqdm(loader, desc="embed", disable=bar_disable(progress), leave=False):
            chunks.append(encoder.features(images.to(device)).float().cpu().numpy())
    # A rank with no items (fewer items than ranks) sends no rows; gather_rows takes the width from the others.
    local = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros((0, 0), np.float32)
    return gather_rows(local, rows, len(dataset))


def save_embeddings(output_dir: str | os.PathLike, ids: Sequence[str], features: np.ndarray) -> None:
    """Write ``embeddings.npy`` (float32 (N, F)) and ``embedding_ids.json`` (N ids) to ``output_dir``, atomically.

    In a distributed run every rank checks the arguments and rank 0 writes.

    Raises:
        DataError: ``features`` is not 2-D, its row count differs from ``len(ids)``,
            or ids repeat.
    """
    features = np.asarray(features)
    ids = [str(i) for i in ids]
    if features.ndim != 2 or features.shape[0] != len(ids):
        raise DataError(f"save_embeddings: features must have shape (len(ids)={len(ids)}, F), got {features.shape}")
    if len(set(ids)) != len(ids):
        raise DataError("save_embeddings: ids must be unique")
    _write_embeddings(Path(output_dir), ids, features.astype(np.float32, copy=False))


@main_process_only
def _write_embeddings(output_dir: Path, ids: list[str], features: np.ndarray) -> None:
    save_npy_atomic(output_dir / EMBEDDINGS_FILE, features)
    atomic_write_json(output_dir / EMBEDDING_IDS_FILE, ids)


def load_embeddings(output_dir: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read ``(ids, features)`` written by :func:`save_embeddings`, checking that they agree.

    Raises:
        DataError: a file is missing or malformed, or the row count differs from the id count.
    """
    output_dir = Path(output_dir)
    path = output_dir / EMBEDDINGS_FILE
    ids = read_json(output_dir / EMBEDDING_IDS_FILE)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"{output_dir / EMBEDDING_IDS_FILE}: expected a JSON list of slice id strings")
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read embeddings ({err})") from err
    if features.ndim != 2 or features.shape[0] != len(ids):
        raise DataError(
            f"{path}: embeddings of shape {features.shape} do not match the {len(ids)} ids of "
            f"{output_dir / EMBEDDING_IDS_FILE}"
        )
    return ids, features


def project(output_dir: str | os.PathLike, features: np.ndarray, encoder: SimCLREncoder | None = None) -> np.ndarray:
    """The projection head's outputs (N, P) float32 for the (N, F) ``features`` of the
    encoder saved in ``output_dir``, cached there as ``projections.npy``.

    The head is taken from ``encoder`` when given, else from ``output_dir/encoder.pt``.

    Raises:
        DataError: the cached projections or the encoder file do not fit ``features``.
    """
    output_dir = Path(output_dir)
    path = output_dir / PROJECTIONS_FILE
    if path.is_file():
        projections = np.load(path, allow_pickle=False)
        if projections.ndim != 2 or projections.shape[0] != len(features):
            raise DataError(f"{path}: projections of shape {projections.shape} for {len(features)} embeddings")
        return projections
    if encoder is None:
        state = torch.load(output_dir / ENCODER_FILE, map_location="cpu", weights_only=True)
        head = [state.get(f"projection.{i}.weight") for i in (0, 2)]
        if any(w is None for w in head) or head[0].shape[1] != features.shape[1]:
            raise DataError(f"{output_dir / ENCODER_FILE}: no projection head for {features.shape[1]}-d features")
        hidden, out = head
    else:
        hidden, out = (encoder.projection[i].weight.detach().cpu() for i in (0, 2))
    with torch.inference_mode():
        x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
        projections = torch.relu(x @ hidden.float().T) @ out.float().T
    projections = projections.numpy().astype(np.float32, copy=False)
    main_process_only(save_npy_atomic)(path, projections)
    return projections
