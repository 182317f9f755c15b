"""Figures of an AL run: Dice against budget and annotation cost (paper Fig. 2), the
embedding map coloured by k-means cluster (paper Fig. 4), and a qualitative overlay of a
prediction against the truth on a hard test slice (paper Fig. 3)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..selection.typiclust import kmeans_labels
from ..utils.io import atomic_write_bytes

__all__ = ["plot_curves", "plot_embeddings", "plot_overlay", "plot_picks"]


def _subplots(ncols: int, figsize: tuple[float, float]):
    """A figure and its axes, built without pyplot: no global backend switch and no
    figure registry, so plotting neither changes a notebook's backend nor leaks memory."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(1, ncols)


def _save(fig, path: str | Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(rows: Sequence[Mapping], path: str | Path) -> None:
    """Mean Dice (over repeats) per strategy against the budget and against annotation cost,
    with 95 % CI bars over repeats where a point has two or more.

    ``rows`` are round metrics with ``strategy``, ``unit``, ``label_kind``, ``budget``,
    ``cost`` and ``dice``; one line per (strategy, unit, label kind).
    """
    from ..evaluation.repeats import mean_interval

    series: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        name = row["strategy"]
        if row.get("unit", "slice") != "slice" or row.get("label_kind", "full") != "full":
            name = f"{name} ({row.get('unit', 'slice')}, {row.get('label_kind', 'full')})"
        series[name][float(row["budget"])].append((float(row["cost"]), float(row["dice"])))
    fig, axes = _subplots(2, figsize=(11, 4))
    for name, by_budget in series.items():
        budgets = sorted(by_budget)
        intervals = [mean_interval([100 * d for _, d in by_budget[b]]) for b in budgets]
        dice = [i.mean for i in intervals]
        error = [0.0 if i.n < 2 else i.half_width for i in intervals]
        cost = [np.mean([c for c, _ in by_budget[b]]) for b in budgets]
        axes[0].errorbar([100 * b for b in budgets], dice, yerr=error, marker="o", capsize=3, label=name)
        axes[1].errorbar(cost, dice, yerr=error, marker="o", capsize=3, label=name)
    axes[0].set_xlabel("labelled fraction of the training pool (%)")
    axes[1].set_xlabel("annotation cost (full-slice units)")
    for ax in axes:
        ax.set_ylabel("3D Dice (%), bars: 95 % CI over repeats")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project ``features`` (N, D) on their first two principal components: (N, 2)."""
    centred = features - features.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_embeddings(
    features: np.ndarray,
    path: str | Path,
    clusters: int = 8,
    seed: int = 0,
    highlight: np.ndarray | None = None,
    title: str = "GCL embeddings (PCA), coloured by k-means cluster",
) -> None:
    """Scatter of the embeddings' first two principal components coloured by a faiss
    k-means clustering; ``highlight`` (indices, e.g. the selected slices) drawn as crosses."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    assignment = kmeans_labels(x, max(1, min(clusters, len(x))), iterations=20, seed=seed)
    points = pca_2d(x.astype(np.float64))
    fig, ax = _subplots(1, figsize=(6, 5))
    ax.scatter(points[:, 0], points[:, 1], c=assignment, cmap="tab10", s=6, alpha=0.7)
    if highlight is not None and len(highlight):
        ax.scatter(points[highlight, 0], points[highlight, 1], marker="x", c="black", s=30, label="selected")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)


def plot_overlay(
    image: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    path: str | Path,
    title: str = "",
) -> None:
    """Image, truth and each named prediction side by side for one slice.

    Args:
        image: (H, W) intensities.
        truth: (H, W) labels.
        predictions: name -> (H, W) labels.
    """
    panels = [("truth", truth), *predictions.items()]
    fig, axes = _subplots(len(panels), figsize=(3 * len(panels), 3.2))
    axes = np.atleast_1d(axes)
    for ax, (name, labels) in zip(axes, panels):
        ax.imshow(image.T, cmap="gray")
        masked = np.ma.masked_equal(labels.T, 0)
        ax.imshow(masked, cmap="viridis", alpha=0.5, vmin=0, vmax=max(3, int(truth.max())))
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_picks(records: Sequence[Mapping], path: str | Path) -> None:
    """What each strategy labelled, against the budget: mean relative slice position,
    patients covered, and the share of labelled slices containing each class, as means
    over repeats, with the pool's value dashed.

    ``records`` are round selection records with ``strategy``, ``budget`` and the
    ``diagnostics`` of :func:`~alseg_monai.loop.diagnostics.pick_diagnostics` (``labelled``
    and ``pool``).
    """
    records = [r for r in records if r.get("diagnostics")]
    if not records:
        return
    pool = records[0]["diagnostics"]["pool"]
    classes = list(pool["class_share"] or {})
    panels = [("position_mean", "mean relative slice position (0 base, 1 apex)", pool["position_mean"]),
              ("patients", "patients covered (share of the pool's)", 1.0)]
    panels += [(f"class:{name}", f"labelled slices containing {name}", pool["class_share"][name]) for name in classes]
    series: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        series[record["strategy"]][float(record["budget"])].append(record["diagnostics"]["labelled"])

    def value(diagnostics: Mapping, key: str) -> float:
        if key.startswith("class:"):
            shares = diagnostics["class_share"] or {}
            return float(shares.get(key[6:], np.nan))
        if key == "patients":
            return diagnostics["patients"] / max(pool["patients"], 1)
        return float(diagnostics[key])

    fig, axes = _subplots(len(panels), figsize=(3.6 * len(panels), 3.4))
    axes = np.atleast_1d(axes)
    for ax, (key, label, reference) in zip(axes, panels):
        for name, by_budget in series.items():
            budgets = sorted(by_budget)
            ax.plot([100 * b for b in budgets], [np.nanmean([value(d, key) for d in by_budget[b]]) for b in budgets],
                    marker="o", label=name)
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label="pool")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("labelled fraction (%)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _save(fig, path)
