"""Benchmark of the clustering and graph baselines at pool scale (issue 4): TypiClust and
CoreGCN on 100,000 x 512 embedding-like features must finish in minutes (no N x N
matrix anywhere).

Run from the repository root (a few minutes on one core)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.bench_selection

CoreGCN is timed with the published graph (1,000 labelled + a 10,000-slice unlabelled
subset) and, with ``--whole-pool``, over all 100,000 slices (its adjacency is applied in
factorised form, so this is feasible).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

from alseg_monai.selection.coregcn import coregcn_select
from alseg_monai.selection.typiclust import typiclust_select
from benchmarks.bench_kcenter import embedding_like


def timed(name: str, run) -> dict:
    start = time.perf_counter()
    picks = run()
    row = {
        "strategy": name,
        "seconds": time.perf_counter() - start,
        "picks": len(picks),
        "distinct": len(set(picks.tolist())),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--whole-pool", action="store_true", help="also run CoreGCN over the whole pool")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    features = embedding_like(args.n, args.dim, seed=5)
    labelled = np.random.default_rng(1).choice(args.n, args.labelled, replace=False)
    clusters = min(args.labelled + args.budget, 500)
    rows = [
        timed(
            f"TypiClust (k-means k = {clusters}, 25 iterations; typicality by faiss kNN per cluster)",
            lambda: typiclust_select(features, labelled, args.budget, seed=0),
        ),
        timed(
            f"CoreGCN, published graph ({args.labelled:,} labelled + 10,000 unlabelled nodes, 200 epochs)",
            lambda: coregcn_select(features, labelled, args.budget, seed=0, subset_size=10_000),
        ),
    ]
    if args.whole_pool:
        rows.append(
            timed(
                f"CoreGCN, whole pool ({args.n:,} nodes, 200 epochs)",
                lambda: coregcn_select(features, labelled, args.budget, seed=0, subset_size=None),
            )
        )

    from benchmarks.common import machine_summary, write_section

    command = "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.bench_selection " + " ".join(sys.argv[1:])
    lines = [
        "## Selection baselines at pool scale (TypiClust, CoreGCN)",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {machine_summary()}; one core (`OMP_NUM_THREADS=1`).",
        "",
        f"Embedding-like features ({args.n:,} x {args.dim}, see `benchmarks/bench_kcenter.py`), "
        f"{args.labelled:,} labelled, budget {args.budget:,}, published settings.",
        "",
        "| strategy | time (s) | picks (distinct) | process peak RSS (GiB) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['strategy']} | {r['seconds']:.1f} | {r['picks']:,} ({r['distinct']:,}) | {r['peak_rss_gib']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("selection", text)


if __name__ == "__main__":
    main()
