"""The study report: strategies judged over repeats (``study.md``, ``study.png``).

Per strategy and budget: the mean test Dice over repeats with its 95 % Student-t
interval, and the paired difference to the reference strategy (Random) per repeat,
with its interval and the number of repeats it won. Repeat r of every strategy
shares the split and the training seeds, which is what makes the pairing fair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..evaluation.repeats import Interval, mean_interval, paired_difference
from ..utils.io import atomic_write_text
from .plots import _save, _subplots

__all__ = ["write_study_report"]


@dataclass(frozen=True)
class StudyCell:
    """One strategy at one budget, Dice in percent.

    Attributes:
        dice: mean over repeats and its interval.
        difference: paired difference to the reference (None for the reference itself).
        wins: repeats in which the strategy beat the reference.
    """

    strategy: str
    budget: float
    dice: Interval
    difference: Interval | None
    wins: int


def _scores(rows: Sequence[Mapping]) -> dict[str, dict[float, dict[int, float]]]:
    scores: dict[str, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        scores[row["strategy"]][float(row["budget"])][int(row["repeat"])] = 100.0 * float(row["dice"])
    return scores


def summarize_study(rows: Sequence[Mapping], reference: str = "random", level: float = 0.95) -> list[StudyCell]:
    """Study cells of ``rows`` (round metrics with ``strategy``, ``budget``, ``repeat``, ``dice``).

    Raises:
        DataError: no rows, or no row of the ``reference`` strategy.
    """
    scores = _scores(rows)
    if not scores:
        raise DataError("summarize_study: no finished round to summarise")
    if reference not in scores:
        raise DataError(f"summarize_study: the reference strategy {reference!r} has no finished round "
                        f"(strategies: {sorted(scores)})")
    cells = []
    for strategy, by_budget in scores.items():
        for budget in sorted(by_budget):
            values = by_budget[budget]
            base = scores[reference].get(budget, {})
            difference = wins = None
            if strategy != reference and set(values) & set(base):
                difference = paired_difference(values, base, level)
                wins = sum(values[r] > base[r] for r in set(values) & set(base))
            interval = mean_interval(list(values.values()), level)
            cells.append(StudyCell(strategy, budget, interval, difference, wins or 0))
    return cells


def _layout(cells: Sequence[StudyCell]) -> tuple[list[str], list[float], dict[tuple[str, float], StudyCell]]:
    strategies = list(dict.fromkeys(c.strategy for c in cells))
    budgets = sorted({c.budget for c in cells})
    return strategies, budgets, {(c.strategy, c.budget): c for c in cells}


def _interval_text(interval: Interval, signed: bool = False) -> str:
    mean = f"{interval.mean:+.1f}" if signed else f"{interval.mean:.1f}"
    if interval.n < 2:
        return mean
    return f"{mean} [{interval.low:+.1f}, {interval.high:+.1f}]" if signed else \
        f"{mean} [{interval.low:.1f}, {interval.high:.1f}]"


def format_study_tables(cells: Sequence[StudyCell], reference: str = "random") -> str:
    """Two markdown tables: Dice mean [95 % CI] per strategy and budget, then the paired
    difference to ``reference`` mean [95 % CI] with the repeats won."""
    strategies, budgets, table = _layout(cells)
    header = "| strategy | " + " | ".join(f"{100 * b:g} %" for b in budgets) + " |"
    rule = "|" + "---|" * (len(budgets) + 1)
    lines = ["3D Dice (%), mean over repeats [95 % CI of the mean]:", "", header, rule]
    for strategy in strategies:
        cells_text = [_interval_text(table[(strategy, b)].dice) if (strategy, b) in table else "" for b in budgets]
        lines.append(f"| {strategy} | " + " | ".join(cells_text) + " |")
    lines += ["", f"Paired difference to {reference} (Dice points), mean [95 % CI], repeats won:", "",
              header.replace("| strategy |", f"| strategy - {reference} |"), rule]
    for strategy in strategies:
        if strategy == reference:
            continue
        texts = []
        for budget in budgets:
            cell = table.get((strategy, budget))
            if cell is None or cell.difference is None:
                texts.append("")
                continue
            texts.append(f"{_interval_text(cell.difference, signed=True)}, {cell.wins}/{cell.difference.n}")
        lines.append(f"| {strategy} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def plot_study(cells: Sequence[StudyCell], path: str | Path, reference: str = "random") -> None:
    """Left: mean Dice per strategy against the budget with 95 % CI bars over repeats.
    Right: the paired difference to ``reference`` with its 95 % CI, and the zero line."""
    strategies, budgets, table = _layout(cells)
    fig, axes = _subplots(2, figsize=(11, 4))
    offsets = np.linspace(-0.15, 0.15, max(len(strategies), 1))
    for offset, strategy in zip(offsets, strategies):
        present = [b for b in budgets if (strategy, b) in table]
        x = np.array([100 * b for b in present]) + offset
        dice = [table[(strategy, b)].dice for b in present]
        axes[0].errorbar(x, [d.mean for d in dice], yerr=_yerr(dice), marker="o", capsize=3, label=strategy)
        differences = [(xi, table[(strategy, b)].difference) for xi, b in zip(x, present)
                       if table[(strategy, b)].difference is not None]
        if differences:
            axes[1].errorbar([xi for xi, _ in differences], [d.mean for _, d in differences],
                             yerr=_yerr([d for _, d in differences]), marker="o", capsize=3, label=strategy)
    axes[1].axhline(0.0, color="grey", linewidth=1)
    axes[0].set_ylabel("3D Dice (%), mean and 95 % CI over repeats")
    axes[1].set_ylabel(f"Dice - {reference} (points), paired, 95 % CI")
    for ax in axes:
        ax.set_xlabel("labelled fraction of the training pool (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


def _yerr(intervals: Sequence[Interval]) -> np.ndarray:
    # No interval from a single repeat: draw no bar rather than a NaN one.
    return np.array([[0.0 if i.n < 2 else i.mean - i.low for i in intervals],
                     [0.0 if i.n < 2 else i.high - i.mean for i in intervals]])


def write_study_report(rows: Sequence[Mapping], folder: str | Path, title: str, notes: Sequence[str] = (),
                       reference: str = "random") -> str:
    """Write ``study.md`` and ``study.png`` to ``folder``; returns the tables' markdown."""
    folder = Path(folder)
    cells = summarize_study(rows, reference)
    tables = format_study_tables(cells, reference)
    atomic_write_text(folder / "study.md", f"# {title}\n\n{tables}\n" + "".join(f"{note}\n\n" for note in notes))
    plot_study(cells, folder / "study.png", reference)
    return tables
