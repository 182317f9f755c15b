"""The report of a run directory: results.csv, results.md (paper Table 1 layout),
curves.png (Fig. 2), picks.png (what each strategy labelled), embeddings.png (Fig. 4),
overlay.png (Fig. 3), and, with several repeats and a ``random`` strategy, study.md and
study.png (each strategy's paired difference to Random over repeats)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..report import (
    format_results_table,
    plot_curves,
    plot_embeddings,
    plot_overlay,
    plot_picks,
    write_results_csv,
    write_results_md,
    write_study_report,
)
from ..report.tables import error_note
from ..utils.io import read_json

__all__ = []

logger = logging.getLogger(__name__)

def write_run_report(experiment: Any, rows: Sequence[dict]) -> str:
    """Write every report file of an :class:`~alseg_monai.loop.ActiveLearningExperiment`'s
    run directory (``rows``: its round metrics); returns the results table."""
    paths = experiment.paths
    names = experiment.data.index.class_names
    write_results_csv(rows, paths.results_csv, names)
    per_volume: dict[tuple[str, float], list[list[float]]] = defaultdict(list)
    for row in rows:
        per_volume[(row["strategy"], float(row["budget"]))].append(row["dice_per_volume"])
    evaluation = experiment.settings["evaluation"]
    unit = evaluation.get("bootstrap_unit", "volume")
    table = format_results_table(rows, per_volume, evaluation.get("bootstrap", 1000), unit=unit)
    repeats = experiment.settings["repeats"]
    write_results_md(
        paths.results_md, table,
        title=f"3D Dice (%) on the test split of {experiment.data.index.kind} ({experiment.settings['dataset_dir']})",
        notes=[
            f"Mean over {repeats} repeat(s) of the test Dice of each round's best-on-validation model. "
            + error_note(repeats, unit),
            f"Labels: {_label_kinds(experiment)}; Dice convention: {evaluation.get('convention', 'paper')}.",
        ],
    )
    plot_curves(rows, paths.curves)
    plot_picks(_selection_records(experiment), paths.picks_png)
    if wants_study_report(rows, repeats):
        write_study_report(rows, paths.root, title=f"Strategies against Random over {repeats} repeats "
                           f"({experiment.data.index.kind}, {experiment.settings['dataset_dir']})",
                           notes=[f"Labels: {_label_kinds(experiment)}. Every repeat shares the split and its "
                                  "training seeds across strategies; the difference is paired by repeat."])
    _embedding_plot(experiment)
    _overlay_plot(experiment)
    print(f"\nResults ({paths.results_md}):\n\n{table}", flush=True)
    return table


def wants_study_report(rows: Sequence[dict], repeats: int) -> bool:
    """Whether the run's rows make a study report: several repeats and a finished Random
    round. The rows, not the configured strategies, decide: a partial run (one chain
    profiled, or stopped early) may have Random configured and no Random round yet."""
    return int(repeats) > 1 and any(row.get("strategy") == "random" for row in rows)


def _selection_records(experiment: Any) -> list[dict]:
    records = []
    for spec in experiment.specs:
        for repeat in range(experiment.settings["repeats"]):
            for round_index, budget in enumerate(experiment.budgets):
                path = experiment.paths.round(spec.name, repeat, round_index).selection
                if path.is_file():
                    records.append({"strategy": spec.name, "budget": budget, **read_json(path)})
    return records


def _label_kinds(experiment: Any) -> str:
    """'full masks' when every line of the table used them, else each line's kind and unit."""
    kinds = {(spec.label_kind, spec.unit) for spec in experiment.specs}
    if kinds == {("full", "slice")}:
        return "full masks on slices"
    return ", ".join(f"{spec.name}: {spec.label_kind} ({spec.unit}s)" for spec in experiment.specs)


def _embedding_plot(experiment: Any) -> None:
    if not (experiment.paths.encoder / "embeddings.npy").is_file():
        return
    features = experiment.embeddings()
    highlight = None
    for spec in experiment.specs:
        last = experiment.paths.round(spec.name, 0, len(experiment.budgets) - 1)
        if spec.strategy == "gcl_coreset" and last.selection.is_file():
            labelled = set(read_json(last.selection)["labelled"])
            highlight = np.asarray([i for i, sid in enumerate(experiment.pool_ids) if sid in labelled])
    plot_embeddings(features, experiment.paths.embeddings_png, seed=experiment.settings["seed"], highlight=highlight)


def _overlay_plot(experiment: Any) -> None:
    """Truth and each strategy's last-round prediction on the hardest test slice of the
    first strategy (the slice with most wrongly labelled pixels)."""
    from ..evaluation import predict
    from .models import load_state

    last = len(experiment.budgets) - 1
    models = {}
    for spec in experiment.specs:
        paths = experiment.paths.round(spec.name, 0, last)
        if paths.training.is_file():
            models[spec.name] = load_state(experiment.trainer(spec).build(), paths.models / "best_model.pt")
    if not models:
        return
    first = next(iter(models))
    worst = None
    for item in experiment.data.test_volumes:
        truth = item["label_original"].numpy()
        prediction = predict(models[first], item["image"], item["spatial_shape"])
        errors = (prediction != truth).sum(axis=(0, 1))
        z = int(errors.argmax())
        if worst is None or errors[z] > worst[0]:
            worst = (int(errors[z]), item, z)
    if worst is None:
        return
    _, item, z = worst
    predictions = {name: predict(model, item["image"], item["spatial_shape"])[..., z] for name, model in models.items()}
    image = _original_size_slice(experiment, item, z)
    plot_overlay(image, item["label_original"].numpy()[..., z], predictions, experiment.paths.overlay,
                 title=f"{item['id']} slice {z} at {100 * experiment.budgets[last]:g} % labelled")


def _original_size_slice(experiment: Any, item: dict, z: int) -> np.ndarray:
    """The slice image resized back to the stored size, for display under the labels."""
    import torch

    image = item["image"][0, :, :, z][None, None]
    shape = tuple(int(s) for s in item["spatial_shape"])
    return torch.nn.functional.interpolate(image, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
