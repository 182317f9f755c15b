"""Start a schedule's chains from its first stage's finished rounds.

A schedule's rounds up to its first switch pick what its first stage picks alone (each
stage's seeds come from its own name) and train with the same seeds (derived from the
repeat and the round, not the strategy), so they equal that strategy's rounds to the last
digit (docs/study.md: all 40 rounds of the 10-repeat schedule run). Recomputing them costs
four fifths of a schedule's study; this research script copies them instead, renaming the
strategy in each round's files, and the bundle run then resumes each chain at its first
round after the switch.

Usage (a study run directory holding the stage strategy's rounds)::

    python -m benchmarks.seed_schedule --run-dir bundles/slice_active_learning/runs/lb_phantom \\
        --schedule gcl_then_bald --stage gcl_coreset --rounds 4 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from alseg_monai.utils import atomic_write_json


def seed_chain(run_dir: Path, schedule: str, stage: str, repeat: int, rounds: int) -> int:
    """Copy rounds ``0 .. rounds - 1`` of ``stage`` to ``schedule`` for one repeat; returns
    the rounds copied (a round already present, or not finished for the stage, is skipped)."""
    copied = 0
    for index in range(rounds):
        source = run_dir / stage / f"repeat_{repeat}" / f"round_{index}"
        target = run_dir / schedule / f"repeat_{repeat}" / f"round_{index}"
        if target.exists() or not (source / "metrics.json").is_file():
            continue
        shutil.copytree(source, target)
        for name in ("metrics.json", "selection.json"):
            path = target / name
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("strategy") == stage:
                data["strategy"] = schedule
                atomic_write_json(path, data)
        copied += 1
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--schedule", required=True, help="the schedule's name in the study")
    parser.add_argument("--stage", required=True, help="the strategy of its first stage (a strategy of the run)")
    parser.add_argument("--rounds", type=int, required=True, help="rounds before the first switch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    total = sum(seed_chain(args.run_dir, args.schedule, args.stage, r, args.rounds) for r in range(args.repeats))
    print(f"{args.schedule}: {total} rounds copied from {args.stage}")


if __name__ == "__main__":
    main()
