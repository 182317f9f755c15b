"""Helpers of the selection tests: reference K-Center Greedy implementations, a tiny
segmentation network with BatchNorm and dropout, and small synthetic pools."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import pairwise_distances
from torch import nn

from alseg_monai.selection import SelectionContext


def textbook_kcenter(features: np.ndarray, labelled, budget: int, first: int | None = None) -> np.ndarray:
    """Sener and Savarese's implementation: sklearn distances to every new centre, float32 minima."""
    features = np.asarray(features, dtype=np.float32)
    labelled = list(labelled)
    mind = pairwise_distances(features, features[labelled]).min(1) if labelled else None
    picks: list[int] = []
    for _ in range(budget):
        pick = first if mind is None else int(np.argmax(mind))
        picks.append(pick)
        distance = pairwise_distances(features, features[[pick]])[:, 0]
        mind = distance if mind is None else np.minimum(mind, distance)
    return np.array(picks)


def brute_force_kcenter(features: np.ndarray, labelled, budget: int) -> np.ndarray:
    """Each pick: the unlabelled row maximising its exact float64 distance to the nearest centre."""
    x = np.asarray(features, dtype=np.float32).astype(np.float64)
    full = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    centres = list(labelled)
    picks = []
    for _ in range(budget):
        mind = full[:, centres].min(1)
        mind[centres] = -1.0
        pick = int(np.argmax(mind))
        picks.append(pick)
        centres.append(pick)
    return np.array(picks)


def coverage_radius(features: np.ndarray, centres) -> float:
    """The k-center objective: largest distance of any row to its nearest centre."""
    x = np.asarray(features, dtype=np.float64)
    c = x[np.asarray(centres)]
    return float(np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1)).min(1).max())


def clustered(n_clusters: int, per_cluster: int, dim: int, seed: int = 0, spread: float = 0.05) -> np.ndarray:
    """Tight Gaussian clusters around well separated random centres: (n_clusters * per_cluster, dim)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_clusters, dim))
    sizes = rng.integers(1, 2 * per_cluster, n_clusters)  # unequal sizes, so random picks miss small ones
    points = [c + spread * rng.normal(0, 1, (s, dim)) for c, s in zip(centres, sizes)]
    return np.concatenate(points).astype(np.float32)


class TinySegNet(nn.Module):
    """A two-level UNet-like net with BatchNorm and dropout: (B, 1, H, W) -> (B, C, H, W) logits."""

    def __init__(self, num_classes: int = 3, width: int = 8, dropout: float = 0.3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.down = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.deep = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Dropout2d(dropout),
        )
        self.up = nn.Upsample(scale_factor=2)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(3 * width, num_classes, 1))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        shallow = self.down(x)
        return self.head(torch.cat([shallow, self.up(self.deep(shallow))], 1))

    def bottleneck_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.deep(self.down(x)).mean(dim=(2, 3))


def pool_records(n: int) -> list[dict]:
    """``n`` slice records of 4 patients in the design's record format."""
    records = []
    for i in range(n):
        patient = f"patient{i % 4 + 1:03d}"
        volume = f"{patient}_frame01"
        records.append({"id": f"{volume}_slice_{i // 4}", "patient": patient, "volume": volume, "slice": i // 4})
    return records


def synthetic_images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float32 slices: discs of varying radius and brightness plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        radius = rng.uniform(2, size / 2)
        disc = np.hypot(yy - size / 2, xx - size / 2) < radius
        images[i, 0] = rng.uniform(0.3, 1.0) * disc + 0.1 * rng.normal(size=(size, size))
    return images


def make_context(
    n: int = 40, num_labelled: int = 6, round: int = 1, seed: int = 0, models=None, size: int = 16, **overrides
) -> SelectionContext:
    """A context over ``n`` synthetic slices whose first ``num_labelled`` (every 7th) are labelled."""
    pool = pool_records(n)
    images = synthetic_images(n, size, seed=1)
    embeddings = np.random.default_rng(2).normal(size=(n, 12)).astype(np.float32)
    labelled = [pool[i]["id"] for i in range(0, 7 * num_labelled, 7)]
    settings = dict(
        pool=pool,
        labelled=labelled,
        round=round,
        seed=seed,
        num_classes=3,
        device="cpu",
        embeddings=lambda: embeddings,
        images=lambda: images,
        models=lambda: list(models or []),
    )
    settings.update(overrides)
    return SelectionContext(**settings)
