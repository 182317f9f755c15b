"""Imported by the torchrun children of the distributed tests (never collected by pytest).

- :func:`install_write_audit`: a ``sys.addaudithook`` hook recording every file-system
  write (open for writing, create, rename, mkdir, remove) under a folder, dumped per rank
  at exit, so a test can check which rank wrote what.
- :func:`state_checksum`: a digest of a module's parameters and buffers.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.mkdir": 0, "os.remove": 0, "os.rmdir": 0, "shutil.rmtree": 0, "os.rename": 1, "os.truncate": 0}


def _is_write(event: str, args: tuple) -> str | None:
    """The path written by an audit event, or None."""
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        return path if writes else None
    if event in _PATH_EVENTS:
        return args[_PATH_EVENTS[event]]
    return None


def install_write_audit(root: str | os.PathLike, log_dir: str | os.PathLike) -> None:
    """Record writes under ``root`` made by this process; at exit write them to
    ``log_dir/writes_rank<RANK>.json`` as ``[[event, path], ...]``."""
    root_text = os.path.abspath(os.fspath(root))
    records: list[list[str]] = []

    def hook(event: str, args: tuple) -> None:
        path = _is_write(event, args)
        if isinstance(path, (str, bytes, os.PathLike)) and not isinstance(path, int):
            text = os.path.abspath(os.fsdecode(path))
            if text == root_text or text.startswith(root_text + os.sep):
                records.append([event, text])

    def dump() -> None:
        target = Path(log_dir) / f"writes_rank{os.environ.get('RANK', '0')}.json"
        target.write_text(json.dumps(records))

    atexit.register(dump)
    sys.addaudithook(hook)


def state_checksum(module) -> str:
    """sha256 over the module's state dict (names, shapes, dtypes and values, in key order)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def scoring_networks(count: int = 3):
    """``count`` small UNets with BatchNorm and dropout, initialised from seeds 0.. (the
    previous round's ensemble of the scoring checks)."""
    import torch

    from alseg_monai.segmentation import UNet2D

    networks = []
    for seed in range(count):
        torch.manual_seed(seed)
        networks.append(UNet2D(in_channels=1, num_classes=3, channels=(4, 8, 16), dropout=(0.1, 0.2, 0.3)).eval())
    return networks


def pool_images(count: int = 11, size: int = 16):
    """(count, 1, size, size) float32 images in [0, 1], the same in every process."""
    import numpy as np

    return np.random.default_rng(0).random((count, 1, size, size), dtype=np.float32)


def toy_slices(patients: int = 4, volumes: int = 2, depth: int = 3, size: int = 32):
    """Slice records and aligned dataset items (``image`` (1, S, S), ``patient``,
    ``volume``, ``id``) of random images, the same in every process."""
    import torch

    generator = torch.Generator().manual_seed(0)
    records, items = [], []
    for p in range(patients):
        for v in range(volumes):
            for z in range(depth):
                record = {"id": f"p{p}_v{v}_slice_{z}", "patient": f"p{p}", "volume": f"p{p}_v{v}", "slice": z}
                records.append(record)
                items.append({"image": torch.rand(1, size, size, generator=generator), "patient": record["patient"],
                              "volume": record["volume"], "id": record["id"]})
    return records, items


def toy_segmentation(num_train: int = 8, num_volumes: int = 3, size: int = 32, depth: int = 4):
    """Labelled training slices (``image`` (1, S, S), ``label`` (1, S, S)) and validation
    volumes (``VolumeDataset`` items) of a bright disc on noise, 2 classes."""
    import numpy as np
    import torch

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]

    def sample():
        cy, cx, radius = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(4, 8))]
        label = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2).astype(np.int64)
        image = (0.6 * label + 0.4 * rng.random((size, size))).astype(np.float32)
        return image, label

    train = []
    for _ in range(num_train):
        image, label = sample()
        train.append({"image": torch.from_numpy(image)[None], "label": torch.from_numpy(label)[None]})
    volumes = []
    for v in range(num_volumes):
        pairs = [sample() for _ in range(depth)]
        image = np.stack([p[0] for p in pairs], -1)[None]
        label = np.stack([p[1] for p in pairs], -1)
        volumes.append({"image": torch.from_numpy(image), "label_original": torch.from_numpy(label),
                        "spatial_shape": (size, size), "id": f"vol{v}", "patient": f"patient{v}",
                        "affine": np.eye(4)})
    return train, volumes


def perturb_batchnorm(module, scale: float) -> None:
    """Scale every BatchNorm running variance by ``scale``, in place (a model whose
    statistics drifted, as a rank's do under data-parallel training)."""
    import torch
    from torch import nn

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.running_var.mul_(scale)
