"""Result tables of an AL run: ``results.csv`` (one row per strategy, budget and repeat)
and ``results.md`` (the paper's Table 1 layout: strategy x budget, mean Dice +/- an
error that the table's notes name: the 95 % CI over repeats where there are several,
else 2 bootstrap standard errors over test volumes, paper appendix D)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..evaluation import bootstrap_error
from ..evaluation.repeats import mean_interval
from ..utils.io import atomic_write_text

__all__ = ["error_note", "format_results_table", "write_results_csv", "write_results_md"]

RESULT_COLUMNS = (
    "strategy",
    "unit",
    "label_kind",
    "budget",
    "repeat",
    "seed",
    "round",
    "labelled",
    "added",
    "cost",
    "dice",
    "val_dice",
    "iterations",
    "seconds",
)


def write_results_csv(rows: Sequence[Mapping], path: str | Path, class_names: Sequence[str] = ()) -> None:
    """Write ``rows`` (round metrics) to ``path`` atomically: the standard columns, then
    one ``dice_<class>`` column per foreground class."""
    columns = list(RESULT_COLUMNS) + [f"dice_{name}" for name in class_names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        for name, value in zip(class_names, row.get("dice_per_class", [])):
            flat[f"dice_{name}"] = value
        writer.writerow({k: _fmt(flat.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def format_results_table(
    rows: Sequence[Mapping],
    per_volume: Mapping[tuple[str, float], Sequence[Sequence[float]]] | None = None,
    bootstrap_samples: int = 1000,
    unit: str = "volume",
    seed: int = 0,
) -> str:
    """Markdown table: one row per strategy, one column per budget, cells
    ``mean Dice (%) +/- error`` over repeats.

    The error of a cell with two or more repeats is the half-width of the 95 %
    Student-t interval of the mean over repeats (training noise included); with one
    repeat it is 2 bootstrap standard errors over test volumes or slices (paper
    appendix D; it ignores the training-seed spread). :func:`error_note` says which.

    Args:
        rows: round metrics with ``strategy``, ``budget``, ``repeat``, ``dice``.
        per_volume: ``{(strategy, budget): scores (repeats, volumes)}`` of per-volume
            (or per-slice) Dice, for the bootstrap error of one-repeat cells; without it
            those cells show only the mean.
    """
    means: dict[tuple[str, float], list[float]] = defaultdict(list)
    for row in rows:
        means[(row["strategy"], float(row["budget"]))].append(float(row["dice"]))
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    budgets = sorted({float(row["budget"]) for row in rows})
    header = "| strategy | " + " | ".join(f"{100 * b:g} %" for b in budgets) + " |"
    lines = [header, "|" + "---|" * (len(budgets) + 1)]
    for strategy in strategies:
        cells = []
        for budget in budgets:
            values = means.get((strategy, budget))
            if not values:
                cells.append("")
                continue
            cell = f"{100 * float(np.mean(values)):.1f}"
            scores = (per_volume or {}).get((strategy, budget))
            if len(values) > 1:
                cell += f" ± {100 * mean_interval(values).half_width:.1f}"
            elif scores is not None and len(scores) and len(scores[0]) > 1:
                error = bootstrap_error(np.asarray(scores, dtype=float), n=bootstrap_samples, seed=seed, unit=unit)
                cell += f" ± {100 * error:.1f}"
            cells.append(cell)
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def error_note(repeats: int, unit: str = "volume") -> str:
    """What the ± of :func:`format_results_table` is, for a run of ``repeats`` repeats."""
    if repeats > 1:
        return (f"± is the half-width of the 95 % Student-t confidence interval of the mean over the {repeats} "
                "repeats (each repeat: its own first pick and training seeds, the same split).")
    return (f"± is 2 bootstrap standard errors over test {unit}s of the single repeat (paper appendix D): it "
            "measures the test set's sampling noise only, not the training-seed spread, which is larger at "
            "small budgets; use repeats >= 3 for intervals that include it.")


def write_results_md(path: str | Path, table: str, title: str, notes: Sequence[str] = ()) -> None:
    """Write the results table with a title and notes to ``path`` atomically."""
    text = f"# {title}\n\n{table}\n" + "".join(f"{note}\n" for note in notes)
    atomic_write_text(path, text)
