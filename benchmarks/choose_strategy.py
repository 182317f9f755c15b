"""The held-out protocol's decision rule (docs/study.md), applied to finished study runs.

A candidate is *eligible* when, on every run directory given (one per dataset) and at
every budget, its paired interval to Random is not entirely below 0 and its mean Dice is
not more than 1 point below the worse of Coreset's and Random's. Among the eligible, the
recommended strategy has the largest mean paired difference to Random over every
dataset and budget (equally weighted); if none is eligible, the fewest violations first.

Usage::

    python -m benchmarks.choose_strategy bundles/slice_active_learning/runs/study_phantom \\
        bundles/slice_active_learning/runs/study_abdomen_phantom --repeats 5
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from alseg_monai.report.study import summarize_study

BASELINES = ("random", "coreset")
# How far below the worse baseline a candidate's mean may sit (Dice points).
MARGIN = 1.0


def finished_rows(run_dir: Path, repeats: int) -> list[dict]:
    """Round metrics of every finished round of ``run_dir`` with repeat < ``repeats``."""
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(run_dir.glob("*/repeat_*/round_*/metrics.json"))]
    return [r for r in rows if int(r["repeat"]) < repeats]


def violations(cells, budgets) -> dict[str, list[str]]:
    """Per candidate, the rule's violations at ``budgets`` (a missing cell is one too)."""
    table = {(c.strategy, c.budget): c for c in cells}
    found: dict[str, list[str]] = defaultdict(list)
    for strategy in {c.strategy for c in cells} - set(BASELINES):
        for budget in budgets:
            cell = table.get((strategy, budget))
            if cell is None or cell.difference is None:
                found[strategy].append(f"{100 * budget:g} %: not run")
                continue
            worst = min(table[(b, budget)].dice.mean for b in BASELINES if (b, budget) in table)
            if cell.difference.high < 0:
                found[strategy].append(f"{100 * budget:g} %: below Random ({cell.difference.mean:+.1f} "
                                       f"[{cell.difference.low:+.1f}, {cell.difference.high:+.1f}])")
            if cell.dice.mean < worst - MARGIN:
                found[strategy].append(f"{100 * budget:g} %: {cell.dice.mean:.1f}, more than {MARGIN:g} below "
                                       f"the worse baseline ({worst:.1f})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    differences: dict[str, list[float]] = defaultdict(list)
    problems: dict[str, list[str]] = defaultdict(list)
    for run_dir in args.run_dirs:
        cells = summarize_study(finished_rows(run_dir, args.repeats))
        budgets = sorted({c.budget for c in cells if c.strategy == "random"})
        for strategy, found in violations(cells, budgets).items():
            problems[strategy] += [f"{run_dir.name} {text}" for text in found]
        for cell in cells:
            if cell.difference is not None and cell.strategy not in BASELINES:
                differences[cell.strategy].append(cell.difference.mean)
    ranking = sorted(differences, key=lambda s: (len(problems[s]), -np.mean(differences[s])))
    print("| candidate | violations | mean paired difference to Random (points, cells) |")
    print("|---|---|---|")
    for strategy in ranking:
        print(f"| {strategy} | {len(problems[strategy])} | {np.mean(differences[strategy]):+.2f} "
              f"({len(differences[strategy])}) |")
    for strategy in ranking:
        for text in problems[strategy]:
            print(f"  {strategy}: {text}")
    print(f"recommended: {ranking[0]}")


if __name__ == "__main__":
    main()
