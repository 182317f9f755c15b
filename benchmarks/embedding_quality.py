"""What an embedding knows about a slice: k-NN recovery on held-out patients.

For each feature space of a study's run directory (the GCL encoder, the NT-Xent-only
encoder when trained, and raw pixels), every slice of the validation and test patients
(never seen by the encoders) is given its k nearest training-pool slices in the cosine
geometry the selection uses, and their average predicts:

- the slice's relative position in its stack (0 = first, 1 = last): mean absolute error;
- which structures the slice holds (each foreground class present or not): balanced
  accuracy per class (majority vote of the k neighbours), averaged over classes.

A better embedding for slice selection puts slices of the same anatomy together, so it
recovers both better. Research script behind docs/study.md ("What the group losses add").

Usage (after a study has trained its encoders in the run directory)::

    python -m benchmarks.embedding_quality --configs data/phantom.json cpu.json low_budget_study.json \\
        --output-dir bundles/slice_active_learning/runs/study_phantom --out runs/embedding_phantom.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from alseg_monai.contrastive import embed
from alseg_monai.contrastive.trainer import ENCODER_FILE
from alseg_monai.data.cache import SliceDataset
from alseg_monai.loop.config import load_experiment
from alseg_monai.selection import feature_geometry
from alseg_monai.utils import derive_seed
from alseg_monai.utils.fresh import build_network


def neighbours(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) rows of ``reference`` nearest to each query in the cosine geometry."""
    import faiss

    ref, qry = (np.ascontiguousarray(feature_geometry(a, "cosine")) for a in (reference, queries))
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    return index.search(qry, k)[1]


def slice_targets(records, cache, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,) relative positions and (N, num_classes - 1) structure presence of ``records``."""
    position = np.empty(len(records))
    present = np.zeros((len(records), num_classes - 1), dtype=bool)
    for i, record in enumerate(records):
        depth = cache.volume(record["volume"])["image"].shape[-1]
        position[i] = record["slice"] / max(depth - 1, 1)
        label = cache.slice(record)["label"][0]
        present[i] = [(label == c).any() for c in range(1, num_classes)]
    return position, present


def balanced_accuracy(truth: np.ndarray, guess: np.ndarray) -> float:
    """Mean over classes of (sensitivity + specificity) / 2, classes present and absent in truth only."""
    scores = []
    for c in range(truth.shape[1]):
        t, g = truth[:, c], guess[:, c]
        if t.any() and (~t).any():
            scores.append(0.5 * ((g & t).sum() / t.sum() + (~g & ~t).sum() / (~t).sum()))
    return float(np.mean(scores)) if scores else float("nan")


def encoder_features(experiment, name: str, records) -> np.ndarray | None:
    """Embeddings of ``records`` by the run's trained encoder ``name`` (None if not trained)."""
    folder = experiment.paths.encoder_dir(name)
    if not (folder / ENCODER_FILE).is_file():
        return None
    spec = experiment.encoder_spec(name)
    model = build_network(spec.network, derive_seed(experiment.settings["seed"], "encoder"))
    model.load_state_dict(torch.load(folder / ENCODER_FILE, map_location="cpu", weights_only=True))
    return embed(model, SliceDataset(records, experiment.cache, keys=("image",)), progress=False, threads=1)


def evaluate(experiment, k: int) -> list[dict]:
    """One row per feature space: k-NN position error and structure balanced accuracy."""
    experiment.prepare()
    data = experiment.data
    pool = data.pool
    held_out = data.splits["val"].slices + data.splits["test"].slices
    pool_pos, pool_present = slice_targets(pool, experiment.cache, data.num_classes)
    pos, present = slice_targets(held_out, experiment.cache, data.num_classes)
    spaces = {"pixels": (experiment.cache.images(pool).reshape(len(pool), -1),
                         experiment.cache.images(held_out).reshape(len(held_out), -1))}
    for name in ("gcl", "ntxent"):
        ref = encoder_features(experiment, name, pool)
        if ref is not None:
            spaces[name] = (ref, encoder_features(experiment, name, held_out))
    rows = []
    for name, (ref, qry) in spaces.items():
        near = neighbours(ref, qry, k)
        guess_present = pool_present[near].mean(1) > 0.5
        rows.append({"features": name, "position_mae": float(np.abs(pool_pos[near].mean(1) - pos).mean()),
                     "structures_bacc": balanced_accuracy(present, guess_present),
                     "held_out_slices": len(held_out), "pool_slices": len(pool)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", required=True, help="bundle config files after active_learning.json")
    parser.add_argument("--output-dir", required=True, help="the study's run directory (its encoders and cache)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="bundle overrides, e.g. phantom#root='\"/data/phantom\"'")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    experiment = load_experiment(args.configs, {**overrides, "output_dir": args.output_dir, "workers": 1})
    rows = evaluate(experiment, args.k)
    lines = [f"k-NN (k={args.k}, cosine) from {rows[0]['held_out_slices']} held-out slices to "
             f"{rows[0]['pool_slices']} pool slices ({args.output_dir})", "",
             "| features | relative position MAE | structures balanced accuracy |", "|---|---|---|"]
    lines += [f"| {r['features']} | {r['position_mae']:.3f} | {r['structures_bacc']:.3f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
