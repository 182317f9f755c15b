"""Probe a study's last round: keep a strategy's picks up to the round before it and
change only that round's picks, trained with the round's own training seed (so the
result pairs with every strategy's last round of the same repeat).

Research script behind docs/study.md ("The 10 % round"); it reuses the experiment's
round training (``_train``) and oracle, which are internal. Variants:

- ``replay``: the strategy's own last-round picks (must reproduce the study's Dice);
- ``uniform``: the new picks drawn uniformly from the unlabelled slices;
- ``robust``: K-Center Greedy on cosine g(x) whose candidates exclude the sparsest 10 %
  of the pool (mean distance to the 10 nearest neighbours), every slice still counted
  for coverage: an outlier-tolerant k-center (Sener and Savarese 2018, Sec. 4.2).

Usage (the study's run directory supplies the cache, the encoder and the picks)::

    python -m benchmarks.probe_last_round --study-dir runs/study_phantom --output-dir runs/probe \\
        --phantom-root runs/phantom --variant uniform --repeats 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from alseg_monai.loop.config import load_experiment
from alseg_monai.loop.state import RoundPaths
from alseg_monai.utils import derive_seed

VARIANTS = ("replay", "uniform", "robust")


def cosine_distances(features: np.ndarray) -> np.ndarray:
    x = features.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.sqrt(np.maximum(2.0 - 2.0 * x @ x.T, 0.0))


def sparseness(distances: np.ndarray, neighbours: int = 10) -> np.ndarray:
    """Mean distance of each slice to its ``neighbours`` nearest others (high: atypical)."""
    return np.sort(distances, 1)[:, 1:neighbours + 1].mean(1)


def robust_picks(distances: np.ndarray, labelled: list[int], k: int, exclude: float = 0.1) -> list[int]:
    sparse = sparseness(distances)
    candidate = sparse <= np.quantile(sparse, 1.0 - exclude)
    nearest = distances[:, labelled].min(1)
    picks: list[int] = []
    for _ in range(k):
        score = np.where(candidate, nearest, -np.inf)
        score[labelled + picks] = -np.inf
        pick = int(np.argmax(score))
        picks.append(pick)
        nearest = np.minimum(nearest, distances[:, pick])
    return picks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--phantom-root", required=True)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--strategy", default="gcl_coreset")
    parser.add_argument("--repeats", type=int, nargs="+", required=True)
    parser.add_argument("--configs", nargs="+", default=["data/phantom.json", "cpu.json", "study.json"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as one of the study's one-thread workers

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for shared in ("cache", "encoder", "splits.json"):
        if not (args.output_dir / shared).exists():
            copy = shutil.copytree if (args.study_dir / shared).is_dir() else shutil.copy2
            copy(args.study_dir / shared, args.output_dir / shared)
    exp = load_experiment(args.configs, {"output_dir": str(args.output_dir), "phantom#root": args.phantom_root,
                                         "workers": 1, "progress": False, "repeats": max(args.repeats) + 1})
    exp.prepare()
    ids = exp.pool_ids
    row = {sid: i for i, sid in enumerate(ids)}
    distances = cosine_distances(exp.embeddings("gcl"))
    sparse = sparseness(distances)
    spec = next(s for s in exp.specs if s.name == args.strategy)
    trainer = exp.trainer(spec)
    last = len(exp.budgets) - 1
    for repeat in args.repeats:
        out = args.output_dir / args.variant / f"repeat_{repeat}"
        if (out / "probe.json").is_file():
            continue
        chain = args.study_dir / args.strategy / f"repeat_{repeat}"
        before = [row[i] for i in json.loads((chain / f"round_{last - 1}/selection.json").read_text())["labelled"]]
        final = json.loads((chain / f"round_{last}/selection.json").read_text())
        k = len(final["labelled"]) - len(before)
        if args.variant == "replay":
            added = [row[i] for i in final["added"]]
        elif args.variant == "uniform":
            rest = np.setdiff1d(np.arange(len(ids)), before)
            rng = np.random.default_rng(derive_seed(1000 + repeat, "probe"))
            added = [int(i) for i in rng.choice(rest, k, replace=False)]
        else:
            added = robust_picks(distances, before, k)
        records = [exp.records[ids[i]] for i in before + added]
        start = time.time()
        seed = derive_seed(exp.settings["seed"] + repeat, "train", last)  # the round's own training seed
        training = exp._train(trainer, spec, records, exp._oracle(spec).reveal(records), RoundPaths(out), seed,
                              len(records) / len(ids))
        evaluation = exp.evaluate_model(training.model, out / "test_dice.csv")
        result = {"variant": args.variant, "repeat": repeat, "dice": evaluation.mean_dice,
                  "val_dice": training.val_dice, "added": [ids[i] for i in added],
                  "added_sparseness": float(sparse[added].mean()), "pool_sparseness": float(sparse.mean()),
                  "seconds": time.time() - start}
        (out / "probe.json").write_text(json.dumps(result, indent=1))
        print(args.variant, repeat, f"{100 * evaluation.mean_dice:.2f}", f"{result['added_sparseness']:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
